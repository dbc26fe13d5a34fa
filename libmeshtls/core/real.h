/*
 * The real libc functions behind every hook, resolved once with dlsym(RTLD_NEXT).
 *
 * mt_real_init() is idempotent and cheap after the first call (pthread_once); every hook calls
 * it before anything else, because a library constructor of another dependency may call close()
 * or read() into our hooks before our own constructor has run.
 */
#ifndef MT_CORE_REAL_H
#define MT_CORE_REAL_H

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

#endif
