/*
 * The real libc functions behind every hook, resolved once with dlsym(RTLD_NEXT).
 *
 * mt_real_init() is idempotent and cheap after the first call (pthread_once); every hook calls
 * it before anything else, because a library constructor of another dependency may call close()
 * or read() into our hooks before our own constructor has run. It also hands libc's functions to
 * util/sys.c for the calls core makes on the application's behalf (mt_sys_use_libc), so a hook
 * that hands a call to core has called it first. Only preload/ names real_*.
 */
#ifndef MT_PRELOAD_REAL_H
#define MT_PRELOAD_REAL_H

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/sendfile.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#define MT_HOOK(ret, name, parameters, arguments) extern ret(*real_##name) parameters;
#include "hooks.def"
#undef MT_HOOK

void mt_real_init(void);

/*
 * The resolution mt_real_init() runs once, with lookup in place of dlsym(RTLD_NEXT, name): every
 * real_<name> set, libc's functions handed to util/sys.c. A name lookup does not find aborts the
 * process with a message, unless hooks.def marks it optional (then real_<name> = mt_sys_<name>).
 * For tests, which play a libc without some names.
 */
void mt_real_resolve(void *(*lookup)(const char *name));

#endif
