/*
 * Resolution of the real libc functions (see real.h). A name that cannot be resolved, or that
 * resolves back into this library (loaded twice, or an unusual link order), aborts with a message:
 * a hook with no real function behind it cannot keep any promise to the application.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "real.h"

#define MT_HOOK(ret, name, parameters, arguments) ret(*real_##name) parameters;
#include "hooks.def"
#undef MT_HOOK

static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void die(const char *name, const char *why)
{
    char line[256];
    int length = snprintf(line, sizeof(line), "meshtls[%ld]: fatal: cannot resolve %s: %s\n",
                          (long)getpid(), name, why);
    if (length > 0)
        (void)!write(STDERR_FILENO, line, (size_t)length);
    abort();
}

static void *resolve(const char *name)
{
    void *symbol = dlsym(RTLD_NEXT, name);
    if (symbol == NULL)
        die(name, "not found in the libraries after libmeshtls");
    Dl_info found;
    Dl_info self;
    if (dladdr(symbol, &found) != 0 && dladdr((void *)&real_once, &self) != 0 &&
        found.dli_fbase == self.dli_fbase)
        die(name, "it resolves to libmeshtls itself");
    return symbol;
}

static void resolve_all(void)
{
#define MT_HOOK(ret, name, parameters, arguments)                                                  \
    do {                                                                                           \
        void *symbol = resolve(#name);                                                             \
        memcpy(&real_##name, &symbol, sizeof(symbol));                                             \
    } while (0);
#include "hooks.def"
#undef MT_HOOK
}

void mt_real_init(void)
{
    pthread_once(&real_once, resolve_all);
}
