/*
 * The library's configuration: libconfig text → a plain struct, read once at initialisation.
 *
 * Where it comes from: the file named by MESHTLS_CONFIG, else /etc/meshtls/meshtls.conf when it
 * exists, else built-in defaults. Environment overrides are applied last: MESHTLS_AGENT_SOCKET,
 * MESHTLS_LOG. Every error message names the file, the line and the key, and lists the valid
 * values, e.g.  /etc/meshtls/meshtls.conf:4: outbound.loopback: "tls" is not one of "mtls", "plain"
 *
 * A config that fails to load must never be half-applied: callers get an error and keep nothing.
 * Unknown keys are errors too (a misspelt key silently ignored is a policy nobody wrote).
 */
#ifndef MT_CONFIG_CONFIG_H
#define MT_CONFIG_CONFIG_H

#include <limits.h>
#include <stddef.h>

#include "../util/log.h"
#include "../util/result.h"

#define MT_CONFIG_DEFAULT_PATH "/etc/meshtls/meshtls.conf"
#define MT_CONFIG_DEFAULT_AGENT_SOCKET "/run/meshtls/agent.sock"
#define MT_CONFIG_MESSAGE_MAX 512
#define MT_CONFIG_SOCKET_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

enum mt_outbound_mode {
    MT_OUTBOUND_PLAIN = 0,
    MT_OUTBOUND_MTLS = 1,
};

enum mt_inbound_mode {
    MT_INBOUND_PLAIN = 0,
    MT_INBOUND_STRICT = 1,
};

struct mt_config {
    char source[PATH_MAX]; /* the file read, "" for built-in defaults */
    char agent_socket[MT_CONFIG_SOCKET_PATH_MAX];
    enum mt_log_level log_level;
    struct {
        enum mt_outbound_mode loopback; /* destination in 127.0.0.0/8 or ::1; default plain */
        enum mt_outbound_mode other;    /* key "default"; default mtls */
    } outbound;
    struct {
        enum mt_inbound_mode loopback; /* peer in 127.0.0.0/8 or ::1; default plain */
        enum mt_inbound_mode other;    /* key "default"; default strict */
    } inbound;
    char trust_domain[256];        /* "" = the trust domain of the agent-issued identity */
    unsigned handshake_timeout_ms; /* key handshake_timeout_ms; default 10000 */
    unsigned agent_timeout_ms;     /* key agent_timeout_ms; default 5000 */
};

/* The built-in defaults (no file read). */
void mt_config_set_defaults(struct mt_config *config);

/*
 * Reads path over the defaults already in config. On error config is left unchanged and message
 * holds one line "FILE:LINE: KEY: what is wrong" (line 0 when the file cannot be opened).
 */
MT_RESULT mt_config_load_file(const char *path, struct mt_config *config, char *message,
                              size_t message_size);

/* Applies MESHTLS_AGENT_SOCKET and MESHTLS_LOG; an invalid value is an error with a message. */
MT_RESULT mt_config_apply_environment(struct mt_config *config, char *message, size_t message_size);

/*
 * The whole procedure: defaults, then the file chosen as described above, then the environment.
 * On error config holds the defaults and message says why.
 */
MT_RESULT mt_config_load(struct mt_config *config, char *message, size_t message_size);

const char *mt_outbound_mode_name(enum mt_outbound_mode mode);
const char *mt_inbound_mode_name(enum mt_inbound_mode mode);

/* Writes the effective configuration as libconfig text (for `meshtls config check`). */
void mt_config_describe(const struct mt_config *config, char *text, size_t capacity);

#endif
