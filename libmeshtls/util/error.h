/*
 * Error codes of libmeshtls, defined once.
 *
 * Every internal function that can fail returns an mt_result carrying one of these codes. The
 * X-macro below is the single list: the enum and the message table are both generated from it,
 * so a code can never exist without a message. libc conventions (-1 and errno) appear only at
 * the hook boundary, where mt_error_to_errno() chooses what the application sees.
 */
#ifndef MT_UTIL_ERROR_H
#define MT_UTIL_ERROR_H

#include <stdbool.h>

#define MT_ERRORS(X)                                                                               \
    X(MT_OK, 0, "success")                                                                         \
    X(MT_ERR_INVALID_ARGUMENT, EINVAL, "invalid argument")                                         \
    X(MT_ERR_NO_MEMORY, ENOMEM, "out of memory")                                                   \
    X(MT_ERR_IO, EIO, "system call failed")                                                        \
    X(MT_ERR_TIMEOUT, ETIMEDOUT, "timed out")                                                      \
    X(MT_ERR_WOULD_BLOCK, EAGAIN, "operation would block")                                         \
    X(MT_ERR_INTERRUPTED, EINTR, "interrupted by a signal")                                        \
    X(MT_ERR_CLOSED, EPIPE, "connection closed")                                                   \
    X(MT_ERR_TOO_LONG, EMSGSIZE, "value too long")                                                 \
    X(MT_ERR_PROTO_TRUNCATED, EPROTO, "agent message truncated")                                   \
    X(MT_ERR_PROTO_VERSION, EPROTO, "agent message has an unsupported protocol version")           \
    X(MT_ERR_PROTO_OVERSIZED, EPROTO, "agent message larger than the protocol allows")             \
    X(MT_ERR_PROTO_MALFORMED, EPROTO, "agent message malformed")                                   \
    X(MT_ERR_PROTO_UNEXPECTED, EPROTO, "agent sent an unexpected message type")                    \
    X(MT_ERR_AGENT_UNREACHABLE, ECONNREFUSED, "agent unreachable")                                 \
    X(MT_ERR_AGENT_REFUSED, EACCES, "agent refused to issue an identity")                          \
    X(MT_ERR_AGENT_UNTRUSTED, EPERM, "agent socket served by another user than agent_uid")         \
    X(MT_ERR_SPIFFE_ID, EINVAL, "not a valid SPIFFE ID")                                           \
    X(MT_ERR_SVID, EACCES, "certificate is not a valid X.509-SVID")                                \
    X(MT_ERR_CRYPTO, EPROTO, "cryptographic operation failed")                                     \
    X(MT_ERR_CERT_PARSE, EINVAL, "certificate or key could not be parsed")                         \
    X(MT_ERR_CONFIG, EINVAL, "configuration error")                                                \
    X(MT_ERR_POLICY_DENIED, ECONNREFUSED, "refused by policy")                                     \
    X(MT_ERR_HANDSHAKE, ECONNRESET, "TLS handshake failed")                                        \
    X(MT_ERR_PEER_IDENTITY, ECONNRESET, "peer identity rejected")                                  \
    X(MT_ERR_PLAINTEXT_PEER, ECONNRESET, "peer did not speak TLS")                                 \
    X(MT_ERR_NO_IDENTITY, ECONNREFUSED, "no workload identity available")                          \
    X(MT_ERR_UNSUPPORTED, EOPNOTSUPP, "not supported by this build")                               \
    X(MT_ERR_HANDOVER_STATE, ECONNRESET, "TLS session state cannot be handed over")                \
    X(MT_ERR_MEMBERSHIP, EPROTO, "mesh membership set malformed")

enum mt_error {
#define MT_ERROR_ENUM(name, errno_value, message) name,
    MT_ERRORS(MT_ERROR_ENUM)
#undef MT_ERROR_ENUM
        MT_ERROR_COUNT
};

/* A human-readable sentence for code; never NULL. */
const char *mt_error_message(enum mt_error code);

/* The errno an application sees when this error ends a socket call. */
int mt_error_to_errno(enum mt_error code);

/* The symbolic name ("MT_ERR_TIMEOUT"), for logs and tests. */
const char *mt_error_name(enum mt_error code);

#endif
