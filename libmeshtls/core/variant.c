/*
 * Which build of the preload a new program needs (see variant.h).
 *
 * Owns the names of the two builds and the rewriting of one LD_PRELOAD entry. Must never
 * allocate: it runs on the way to exec, in vfork children too.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../util/log.h"
#include "variant.h"

#define GLIBC_NAME "libmeshtls-preload.so"
#define MUSL_NAME "libmeshtls-preload-musl.so"

#ifdef __GLIBC__
#define OWN_NAME GLIBC_NAME
#define OTHER_NAME MUSL_NAME
#else
#define OWN_NAME MUSL_NAME
#define OTHER_NAME GLIBC_NAME
#endif

const char *mt_variant_own_path(void)
{
    static const char anchor = 0; /* any object of this library locates it */
    Dl_info info;
    if (dladdr(&anchor, &info) != 0 && info.dli_fname != NULL)
        return info.dli_fname;
    return NULL;
}

static bool is_musl_program(const struct mt_check_report *report)
{
    return report->verdict == MT_CHECK_MUSL;
}

bool mt_variant_is_other(const struct mt_check_report *report)
{
#ifdef __GLIBC__
    return is_musl_program(report);
#else
    /* exec/check.c judges for glibc: INTERPOSABLE is a glibc program. */
    return report->verdict == MT_CHECK_INTERPOSABLE;
#endif
}

/* The other build's path, beside own (whose file name must be OWN_NAME); false when not. */
static bool other_path(const char *own, char *path, size_t capacity)
{
    const char *slash = strrchr(own, '/');
    const char *name = slash != NULL ? slash + 1 : own;
    if (strcmp(name, OWN_NAME) != 0)
        return false;
    int length = snprintf(path, capacity, "%.*s%s", (int)(name - own), own, OTHER_NAME);
    return length > 0 && (size_t)length < capacity;
}

bool mt_variant_is_own_musl(const struct mt_check_report *report)
{
#ifdef __GLIBC__
    (void)report;
    return false;
#else
    return is_musl_program(report);
#endif
}

bool mt_variant_serves(const struct mt_check_report *report)
{
    if (!is_musl_program(report))
        return false;
    if (mt_variant_is_own_musl(report))
        return true;
    const char *own = mt_variant_own_path();
    char other[4096];
    return own != NULL && other_path(own, other, sizeof(other)) &&
           faccessat(AT_FDCWD, other, R_OK, AT_EACCESS) == 0;
}

const char *mt_variant_preload_entry(const struct mt_check_report *report, const char *entry,
                                     char *buffer, size_t capacity)
{
    return mt_variant_switch_entry(mt_variant_own_path(), report, entry, buffer, capacity);
}

const char *mt_variant_switch_entry(const char *own, const struct mt_check_report *report,
                                    const char *entry, char *buffer, size_t capacity)
{
    const char *at = own != NULL ? strstr(entry, own) : NULL;
    if (at == NULL || !mt_variant_is_other(report))
        return NULL;
    char other[4096];
    if (!other_path(own, other, sizeof(other)) ||
        faccessat(AT_FDCWD, other, R_OK, AT_EACCESS) != 0) {
        mt_log_warn("exec of %s: it needs %s (interpreter %s), which is not installed beside %s; "
                    "it keeps LD_PRELOAD=%s, which its loader cannot load (install the %s build "
                    "of libmeshtls)",
                    report->path, OTHER_NAME, report->interpreter, own, own,
                    strcmp(OTHER_NAME, MUSL_NAME) == 0 ? "musl" : "glibc");
        return NULL;
    }
    /* The other build alone, as `meshtls run` starts a musl program: the other libraries of this
     * entry are loaded into this process, built for its C library, and the new program's loader
     * would stop at them (musl's) or complain (glibc's). */
    int length = snprintf(buffer, capacity, "LD_PRELOAD=%s", other);
    if (length < 0 || (size_t)length >= capacity) {
        mt_log_warn("exec of %s: its LD_PRELOAD is too long to name %s instead of %s", report->path,
                    other, own);
        return NULL;
    }
    return buffer;
}
