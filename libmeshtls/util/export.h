/*
 * The one mark of an exported symbol. Everything is built with -fvisibility=hidden and each shared
 * object has a version script; a function is visible outside only when it carries MT_EXPORT and
 * its script lists it (tests/lint/check_symbols.py checks both objects' tables).
 */
#ifndef MT_UTIL_EXPORT_H
#define MT_UTIL_EXPORT_H

#define MT_EXPORT __attribute__((visibility("default")))

#endif
