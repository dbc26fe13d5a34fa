/*
 * The two builds of the preload, one per C library: libmeshtls-preload.so for programs that
 * glibc's loader starts, libmeshtls-preload-musl.so for musl's (Alpine), installed side by side.
 * Each loader can load only its own: musl's refuses the glibc build (relocation errors, exit 127)
 * and glibc's ignores the musl one (the program runs unmeshed).
 *
 *   this build   program started          LD_PRELOAD entry          a session handed over
 *   glibc        glibc                    kept                      follows
 *   glibc        musl                     the musl build alone      reset (cannot cross)
 *   musl         musl                     kept                      follows
 *   musl         glibc                    the glibc build alone     reset (cannot cross)
 *
 * The hand-over carries wolfSSL's internal state, whose layout is measured per build
 * (packaging/wolfssl/build.sh), so a session never crosses from one build to the other.
 */
#ifndef MT_CORE_VARIANT_H
#define MT_CORE_VARIANT_H

#include <stdbool.h>
#include <stddef.h>

#include "../exec/check.h"

/* This library's path, as the loader opened it; NULL when it cannot be found. */
const char *mt_variant_own_path(void);

/* The program report says the program starts with the other C library than this build's. */
bool mt_variant_is_other(const struct mt_check_report *report);

/* The program of report is a musl program and this is the musl build: no switch, as for glibc. */
bool mt_variant_is_own_musl(const struct mt_check_report *report);

/* A musl program (which exec/check.c, judging for glibc, calls not interposable) that a build of
 * libmeshtls serves: this one, or the musl build beside this one. */
bool mt_variant_serves(const struct mt_check_report *report);

/*
 * For entry ("LD_PRELOAD=..." naming this library), the entry naming the build the program of
 * report needs, alone, written into buffer; NULL when entry is right as it is (same C library,
 * this library not named, or no such program), or when the other build is not installed beside
 * this one or the result does not fit (both logged).
 */
const char *mt_variant_preload_entry(const struct mt_check_report *report, const char *entry,
                                     char *buffer, size_t capacity);

/* The same for a library at own (for tests: this build's file name, in a directory of theirs). */
const char *mt_variant_switch_entry(const char *own, const struct mt_check_report *report,
                                    const char *entry, char *buffer, size_t capacity);

#endif
