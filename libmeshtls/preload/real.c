/*
 * Resolution of the real libc functions (see real.h).
 *
 * Owns the real_* pointers and the table of libc functions it gives util/sys.c. A name that
 * cannot be resolved, or that resolves back into this library (loaded twice, or an unusual link
 * order), aborts with a message: a hook with no real function behind it cannot keep any promise
 * to the application. Names newer than the oldest glibc supported are the exception
 * (MT_HOOK_OPTIONAL in hooks.def): they fall back to the system call. Must never call a hooked
 * name itself: at this point nothing is resolved yet.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/sys.h"
#include "real.h"

#define MT_HOOK(ret, name, parameters, arguments) ret(*real_##name) parameters;
#include "hooks.def"
#undef MT_HOOK

static pthread_once_t real_once = PTHREAD_ONCE_INIT;
/* Filled once, then handed to sys.c, which keeps the pointer. */
static struct mt_sys_libc libc_calls;

static void die(const char *name, const char *why)
{
    char line[256];
    int length = snprintf(line, sizeof(line), "meshtls[%ld]: fatal: cannot resolve %s: %s\n",
                          (long)mt_sys_getpid(), name, why);
    if (length > 0)
        (void)mt_sys_write(STDERR_FILENO, line, (size_t)length);
    abort();
}

/* The address of name, or NULL when it is missing and optional. */
static void *resolve(void *(*lookup)(const char *), const char *name, bool optional)
{
    void *symbol = lookup(name);
    if (symbol == NULL) {
        if (optional)
            return NULL;
        die(name, "not found in the libraries after libmeshtls");
    }
    Dl_info found;
    Dl_info self;
    if (dladdr(symbol, &found) != 0 && dladdr((void *)&real_once, &self) != 0 &&
        found.dli_fbase == self.dli_fbase)
        die(name, "it resolves to libmeshtls itself");
    return symbol;
}

void mt_real_resolve(void *(*lookup)(const char *name))
{
#define MT_HOOK(ret, name, parameters, arguments)                                                  \
    do {                                                                                           \
        void *symbol = resolve(lookup, #name, false);                                              \
        memcpy(&real_##name, &symbol, sizeof(symbol));                                             \
    } while (0);
#define MT_HOOK_OPTIONAL(ret, name, parameters, arguments)                                         \
    do {                                                                                           \
        void *symbol = resolve(lookup, #name, true);                                               \
        if (symbol != NULL)                                                                        \
            memcpy(&real_##name, &symbol, sizeof(symbol));                                         \
        else                                                                                       \
            real_##name = mt_sys_##name;                                                           \
    } while (0);
#include "hooks.def"
#undef MT_HOOK_OPTIONAL
#undef MT_HOOK

    libc_calls = (struct mt_sys_libc){
        .connect = real_connect,
        .accept = real_accept,
        .accept4 = real_accept4,
        .read = real_read,
        .write = real_write,
        .readv = real_readv,
        .writev = real_writev,
        .shutdown = real_shutdown,
        .close = real_close,
        .poll = real_poll,
        .epoll_ctl = real_epoll_ctl,
        .epoll_pwait = real_epoll_pwait,
    };
    mt_sys_use_libc(&libc_calls);
}

static void *next_symbol(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

static void resolve_all(void)
{
    mt_real_resolve(next_symbol);
}

void mt_real_init(void)
{
    pthread_once(&real_once, resolve_all);
}
