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
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
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

/*
 * The addresses this library is mapped at, from its first loaded segment to the end of its last:
 * what dladdr() would call this object. Found once with dl_iterate_phdr, because dladdr() also
 * looks for the nearest symbol, a walk through a library's whole symbol table that, twice for each
 * of the ~70 names, cost more than half a millisecond of every meshed process's start.
 */
struct mapping {
    uintptr_t start;
    uintptr_t end;
};

static int find_own_mapping(struct dl_phdr_info *info, size_t size, void *argument)
{
    (void)size;
    struct mapping *self = argument;
    uintptr_t start = UINTPTR_MAX;
    uintptr_t end = 0;
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *segment = &info->dlpi_phdr[i];
        if (segment->p_type != PT_LOAD)
            continue;
        uintptr_t first = info->dlpi_addr + segment->p_vaddr;
        if (first < start)
            start = first;
        if (first + segment->p_memsz > end)
            end = first + segment->p_memsz;
    }
    uintptr_t anchor = (uintptr_t)&real_once;
    if (anchor < start || anchor >= end)
        return 0;
    *self = (struct mapping){start, end};
    return 1;
}

/* The address of name, or NULL when it is missing and optional. */
static void *resolve(void *(*lookup)(const char *), const char *name, bool optional,
                     const struct mapping *self)
{
    void *symbol = lookup(name);
    if (symbol == NULL) {
        if (optional)
            return NULL;
        die(name, "not found in the libraries after libmeshtls");
    }
    if ((uintptr_t)symbol >= self->start && (uintptr_t)symbol < self->end)
        die(name, "it resolves to libmeshtls itself");
    return symbol;
}

void mt_real_resolve(void *(*lookup)(const char *name))
{
    struct mapping self = {0, 0};
    (void)dl_iterate_phdr(find_own_mapping, &self);
#define MT_HOOK(ret, name, parameters, arguments)                                                  \
    do {                                                                                           \
        void *symbol = resolve(lookup, #name, false, &self);                                       \
        memcpy(&real_##name, &symbol, sizeof(symbol));                                             \
    } while (0);
#define MT_HOOK_OPTIONAL(ret, name, parameters, arguments)                                         \
    do {                                                                                           \
        void *symbol = resolve(lookup, #name, true, &self);                                        \
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
