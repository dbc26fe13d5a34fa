/*
 * The library's configuration: libconfig text → a plain struct, read once at initialisation.
 *
 * Where it comes from: the file named by MESHTLS_CONFIG, else /etc/meshtls/meshtls.conf when it
 * exists, else built-in defaults. Environment overrides are applied last: MESHTLS_AGENT_SOCKET,
 * MESHTLS_AGENT_UID, MESHTLS_LOG, MESHTLS_PROBE_SOURCES, MESHTLS_PROBE_PORTS. Every error message
 * names the file, the line and the key, and lists the valid values, e.g.
 * /etc/meshtls/meshtls.conf:4: outbound.loopback: "tls" is not one of "mtls", "plain", "auto"
 *
 * A config that fails to load must never be half-applied: callers get an error and keep nothing.
 * Unknown keys are errors too (a misspelt key silently ignored is a policy nobody wrote).
 */
// The syntax, as libconfig text. Every key is optional; values shown are the defaults except
// where marked "example". (Line comments here because the patterns contain a slash-star.)
//
//   agent_socket = "/run/meshtls/agent.sock";  # MESHTLS_AGENT_SOCKET overrides
//   agent_uid = 0;                             # 0 .. 2147483647: the uid the agent runs as; a
//                                              #   socket served by any other is refused (a
//                                              #   program that replaced it); MESHTLS_AGENT_UID
//   log_level = "warn";                        # "error" | "warn" | "info" | "debug"; MESHTLS_LOG
//   trust_domain = "";                         # "" = the agent's; else peers must be in this one
//   handshake_timeout_ms = 10000;              # 100 .. 600000
//   detect_timeout_ms = 10000;                 # 100 .. 600000: how long a permissive port waits
//                                              #   for the first bytes before passing plaintext on
//   agent_timeout_ms = 5000;                   # 100 .. 600000
//   agent_wait_ms = 5000;                      # 0 .. 600000: how long a process started before
//                                              #   the agent waits for its first identity
//   resumption_s = 600;                        # 0 .. 86400: how long one full handshake may be
//                                              #   resumed (TLS 1.3 tickets); 0 = never
//   skip_ports = [53, 443];                    # example (default []): never touched, either way
//   post_quantum = "prefer";                   # "prefer" | "require" | "off": the key exchange,
//                                              #   see below
//
//   outbound = {
//       loopback = "plain";                    # "mtls" | "plain" | "auto": 127.0.0.0/8 or ::1
//       default = "mtls";                      # "mtls" | "plain" | "auto": every other
//                                              #   destination; "auto": see below
//       rules = (                              # example (default none); first match wins
//           { to = "10.0.0.0/8"; ports = [5432, 6379]; mode = "mtls";
//             identity = "spiffe://prod.example.com/ns/db/*"; },
//           { to = "2001:db8::/32"; ports = ["8000-8999"]; mode = "plain"; },
//           { to = "10.1.2.3"; mode = "mtls"; identity = "spiffe://prod.example.com/ns/api/sa/x"; }
//       );
//   };
//
//   inbound = {
//       loopback = "plain";                    # "strict" | "permissive" | "plain": a loopback
//       default = "strict";                    #   peer / any other peer, on a port with no rule
//       rules = (                              # example (default none); first match wins
//           { port = 8080; mode = "permissive"; allow = ["spiffe://prod.example.com/ns/web/*"]; },
//           { port = 3306; mode = "strict"; opaque = true;
//             allow = ["spiffe://prod.example.com/ns/api/sa/x"]; },
//           { port = "9000-9099"; mode = "plain"; }
//       );
//       probe_sources = ["10.0.3.7"];          # example (default []); MESHTLS_PROBE_SOURCES
//       probe_ports = [8080, 9090];            # example (default []); MESHTLS_PROBE_PORTS
//   };
//
// "auto" (outbound.default, outbound.loopback, a rule's mode): the node agent's mesh membership
// decides at connect(). A destination in it gets mTLS, its server checked against the entry's
// identity pattern when the entry has one; any other gets plaintext, logged at info. A destination
// once reached over mTLS this way stays mTLS in this process until the membership says it was
// removed (never because the agent is unreachable or the entry merely absent). A rule with mode
// "mtls" is never decided by membership. Without any membership yet (agent unreachable), the first
// decision waits up to agent_wait_ms for it, then decides plaintext for every destination with a
// warning until a membership arrives.
//
// post_quantum: whether the TLS key exchange resists a quantum computer, so that traffic recorded
// today cannot be decrypted later. "prefer": a connection offers the hybrid group
// X25519MLKEM768 (ML-KEM-768, FIPS 203, combined with X25519) first, which mesh peers agree on in
// one round trip; a peer that knows only classical groups (X25519, P-256) is still served with
// one. "require": only hybrid groups; a classical peer is refused. "off": classical groups only.
// A wolfSSL without ML-KEM (-Dwolfssl=system, Debian 12's 5.5.4) does "prefer" classically and
// refuses to load an identity under "require".
//
// skip_ports: ports and "FIRST-LAST" ranges that libmeshtls never touches: outbound by the
// destination port, inbound by the local port. Checked before any rule.
//
// Outbound rule keys: `to` an IPv4 or IPv6 address or CIDR with its host bits zero (absent: every
// address; an IPv4 CIDR also matches v4-mapped IPv6 destinations such as ::ffff:10.0.0.7, while
// an IPv6 CIDR matches only IPv6 destinations); `ports` a non-empty array of ports (1 .. 65535)
// and "FIRST-LAST" ranges (absent: every port); `mode` (required); `identity` the pattern the
// server's SPIFFE ID must match (only with "mtls"; absent: any ID of the trust domain). Rules are
// tried before the loopback/default modes, for loopback destinations too.
//
// Inbound rule keys: `port` (required) the local listening port, 8080 or "8000-8999"; `mode`
// (required); `allow` a non-empty array of peer ID patterns (not with "plain"; absent: any peer
// of the trust domain); `opaque` (default false) true for server-speaks-first protocols (MySQL,
// SMTP): never wait for the client's first bytes before deciding. A rule applies to loopback
// peers too; `inbound.loopback`/`inbound.default` only decide ports no rule names.
//
// Probes: a connection whose local port is in inbound.probe_ports and whose peer address is in
// inbound.probe_sources (addresses or CIDRs, as an outbound rule's `to`) is let through in
// plaintext whatever the mode of its port: Kubernetes' kubelet probes a container from the
// node's IP and speaks no mTLS. It is decided like a permissive port (a mesh ClientHello from
// there is still mTLS, with the port's allow list), except on an opaque port, where nothing is
// waited for and it is plain. Either list empty: no exception. Skipped and plain ports stay as
// they are. The trust this takes: anything that can send from a probe source reaches the probe
// ports in plaintext (SECURITY.md).
//
// An identity pattern is a SPIFFE ID, matched exactly, or a SPIFFE ID followed by "/*", which
// matches every ID one or more path segments below it: "spiffe://td/ns/a/*" matches
// "spiffe://td/ns/a/x" and "spiffe://td/ns/a/x/y" but neither "spiffe://td/ns/a" nor
// "spiffe://td/ns/ab".
//
// Limits (an error names the one exceeded): MT_CONFIG_OUTBOUND_RULES_MAX outbound rules,
// MT_CONFIG_INBOUND_RULES_MAX inbound rules, MT_CONFIG_RULE_PORTS_MAX entries in one `ports`,
// MT_CONFIG_ALLOW_MAX patterns in one `allow`, MT_CONFIG_SKIP_PORTS_MAX entries in skip_ports,
// MT_CONFIG_PATTERN_MAX bytes per pattern and MT_CONFIG_PATTERN_TEXT_MAX bytes for all distinct
// patterns together. Patterns live in one text area inside the struct, so the struct stays a
// plain value of about 30 KB that can be copied and needs no freeing (mt_config_load_file keeps
// one copy on the stack of whichever application thread first opens a connection).
//
// Environment: MESHTLS_CONFIG names the file; MESHTLS_AGENT_SOCKET, MESHTLS_AGENT_UID and
// MESHTLS_LOG override agent_socket, agent_uid and log_level; MESHTLS_PROBE_SOURCES (addresses
// and CIDRs) and MESHTLS_PROBE_PORTS (ports and ranges), comma-separated, replace
// inbound.probe_sources and inbound.probe_ports. An empty variable counts as unset; a
// set-user-ID program ignores them all (secure_getenv).
#ifndef MT_CONFIG_CONFIG_H
#define MT_CONFIG_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../util/log.h"
#include "../util/text.h"
#include "../util/tls_wire.h"

#define MT_CONFIG_DEFAULT_PATH "/etc/meshtls/meshtls.conf"
#define MT_CONFIG_DEFAULT_AGENT_SOCKET "/run/meshtls/agent.sock"
#define MT_CONFIG_MESSAGE_MAX 512
#define MT_CONFIG_SOCKET_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

#define MT_CONFIG_OUTBOUND_RULES_MAX 64
#define MT_CONFIG_INBOUND_RULES_MAX 64
#define MT_CONFIG_RULE_PORTS_MAX 16
#define MT_CONFIG_ALLOW_MAX 16
#define MT_CONFIG_SKIP_PORTS_MAX 32
#define MT_CONFIG_PROBE_SOURCES_MAX 8
#define MT_CONFIG_PROBE_PORTS_MAX 16
#define MT_CONFIG_RESUMPTION_DEFAULT_S 600
#define MT_CONFIG_RESUMPTION_MAX_S 86400
#define MT_CONFIG_PATTERN_MAX 512        /* bytes of one identity pattern, without the NUL */
#define MT_CONFIG_PATTERN_TEXT_MAX 16384 /* bytes of all distinct patterns, NULs included */
#define MT_CONFIG_NO_PATTERN UINT16_MAX  /* a pattern reference that names no pattern */

enum mt_outbound_mode {
    MT_OUTBOUND_PLAIN = 0,
    MT_OUTBOUND_MTLS = 1,
    /* The agent's mesh membership decides at connect(): a member gets mTLS, anything else
     * plaintext (policy/membership.h, core/members.h). Never in a decision that reaches conn. */
    MT_OUTBOUND_AUTO = 2,
};

enum mt_inbound_mode {
    MT_INBOUND_PLAIN = 0,
    MT_INBOUND_STRICT = 1,
    MT_INBOUND_PERMISSIVE = 2, /* a mesh ClientHello → mTLS, anything else passed on as is */
};

/* first .. last inclusive, 1 <= first <= last <= 65535. */
struct mt_port_range {
    uint16_t first;
    uint16_t last;
};

/* An address block; family AF_UNSPEC matches every address. */
struct mt_cidr {
    sa_family_t family; /* AF_INET, AF_INET6 or AF_UNSPEC */
    uint8_t prefix_length;
    uint8_t address[16]; /* network byte order; 4 bytes used for AF_INET; host bits zero */
};

struct mt_outbound_rule {
    struct mt_cidr to;
    unsigned port_count; /* 0: every port */
    struct mt_port_range ports[MT_CONFIG_RULE_PORTS_MAX];
    enum mt_outbound_mode mode;
    uint16_t identity; /* pattern reference (mt_config_pattern), or MT_CONFIG_NO_PATTERN */
    unsigned line;     /* where the rule starts in the file, for log lines */
};

struct mt_inbound_rule {
    struct mt_port_range port;
    enum mt_inbound_mode mode;
    bool opaque;
    unsigned allow_count;                /* 0: any peer of the trust domain */
    uint16_t allow[MT_CONFIG_ALLOW_MAX]; /* pattern references (mt_config_pattern) */
    unsigned line;
};

struct mt_config {
    char source[PATH_MAX]; /* the file read, "" for built-in defaults */
    char agent_socket[MT_CONFIG_SOCKET_PATH_MAX];
    unsigned agent_uid; /* key agent_uid; default 0: the agent socket's server must be root */
    enum mt_log_level log_level;
    struct {
        enum mt_outbound_mode loopback; /* destination in 127.0.0.0/8 or ::1; default plain */
        enum mt_outbound_mode other;    /* key "default"; default mtls */
        unsigned rule_count;
        struct mt_outbound_rule rules[MT_CONFIG_OUTBOUND_RULES_MAX];
    } outbound;
    struct {
        enum mt_inbound_mode loopback; /* peer in 127.0.0.0/8 or ::1; default plain */
        enum mt_inbound_mode other;    /* key "default"; default strict */
        unsigned rule_count;
        struct mt_inbound_rule rules[MT_CONFIG_INBOUND_RULES_MAX];
        /* Probes (kubelet): plaintext from these sources on these local ports, see above. */
        unsigned probe_source_count;
        struct mt_cidr probe_sources[MT_CONFIG_PROBE_SOURCES_MAX];
        unsigned probe_port_count;
        struct mt_port_range probe_ports[MT_CONFIG_PROBE_PORTS_MAX];
    } inbound;
    unsigned skip_port_count;
    struct mt_port_range skip_ports[MT_CONFIG_SKIP_PORTS_MAX];
    char trust_domain[256];            /* "" = the trust domain of the agent-issued identity */
    unsigned handshake_timeout_ms;     /* key handshake_timeout_ms; default 10000 */
    unsigned detect_timeout_ms;        /* key detect_timeout_ms; default 10000 */
    unsigned agent_timeout_ms;         /* key agent_timeout_ms; default 5000 */
    unsigned agent_wait_ms;            /* key agent_wait_ms; default 5000, 0 = do not wait */
    unsigned resumption_s;             /* key resumption_s; default 600, 0 = never resume */
    enum mt_post_quantum post_quantum; /* key post_quantum; default prefer */
    /* Every distinct identity pattern, NUL-terminated, one after the other. */
    size_t pattern_text_length;
    char pattern_text[MT_CONFIG_PATTERN_TEXT_MAX];
};

/* The built-in defaults (no file read). */
void mt_config_set_defaults(struct mt_config *config);

/*
 * Reads path over the defaults already in config. On error config is left unchanged and message
 * holds one line "FILE:LINE: KEY: what is wrong" (line 0 when the file cannot be opened).
 * Rules, skip_ports and patterns in the file replace those in config; a file without them keeps
 * them.
 */
MT_RESULT mt_config_load_file(const char *path, struct mt_config *config, struct mt_text *reason);

/*
 * Applies MESHTLS_AGENT_SOCKET, MESHTLS_AGENT_UID, MESHTLS_LOG, MESHTLS_PROBE_SOURCES and
 * MESHTLS_PROBE_PORTS; an invalid value is an error with a message, and then none of them is
 * applied.
 */
MT_RESULT mt_config_apply_environment(struct mt_config *config, struct mt_text *reason);

/*
 * The whole procedure: defaults, then the file chosen as described above, then the environment.
 * On error config holds the defaults and message says why.
 */
MT_RESULT mt_config_load(struct mt_config *config, struct mt_text *reason);

/*
 * mt_config_load for a config that is all zero bytes and was never loaded: static storage, as a
 * process's one configuration is. The result is the same; only the pages the defaults and the
 * file need are written.
 */
MT_RESULT mt_config_load_fresh(struct mt_config *config, struct mt_text *reason);

const char *mt_post_quantum_name(enum mt_post_quantum post_quantum);
const char *mt_outbound_mode_name(enum mt_outbound_mode mode);
const char *mt_inbound_mode_name(enum mt_inbound_mode mode);

/*
 * The pattern a reference names (a rule's identity or allow entry), or NULL for
 * MT_CONFIG_NO_PATTERN and anything out of range. Valid as long as config is.
 */
const char *mt_config_pattern(const struct mt_config *config, uint16_t reference);

/*
 * Writes the effective configuration as libconfig text that loads back into the same
 * configuration (for `meshtls config check`). Returns the length of the whole text, like
 * snprintf: a result >= capacity means the text was cut; call again with result + 1 bytes.
 */
size_t mt_config_describe(const struct mt_config *config, char *text, size_t capacity);

#endif
