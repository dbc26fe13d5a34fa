/*
 * The agent protocol: versioned, length-prefixed frames on a Unix stream socket.
 *
 * Frame  = header (8 bytes) + payload (at most MT_PROTO_MAX_PAYLOAD bytes)
 * Header = 'M' 'T' | version (1 byte) | type (1 byte) | payload length (u32 BE)
 * Payload = a sequence of TLVs: tag (u16 BE) | length (u32 BE) | value
 *
 * Versions: 1 (MT_PROTO_VERSION) is every message; 2 (MT_PROTO_VERSION_SUBJECT) is a request that
 * names a SUBJECT, the process to attest instead of the caller (below). Writers use 1 unless
 * the frame carries a SUBJECT, so that a new workload and an old agent still understand each
 * other; a request with a SUBJECT is version 2 so that an agent that predates it refuses it
 * ("protocol version 2 not supported") instead of skipping the unknown tag and attesting the
 * caller, which would hand a supervisor its own identity for the program it supervises.
 * Replies are always version 1.
 *
 * One request, one reply, then the agent closes the connection. Requests:
 *   SVID_REQUEST  { CSR }                     → SVID_RESPONSE or ERROR
 *   ID_REQUEST    { }                         → ID_RESPONSE or ERROR
 *   STATUS_REQUEST { }                        → STATUS_RESPONSE or ERROR
 *   METRICS_FILE_REQUEST { }                  → METRICS_FILE_RESPONSE (+ one fd) or ERROR
 *   MEMBERSHIP_REQUEST { }                    → MEMBERSHIP_RESPONSE (+ one fd) or ERROR
 * SVID, ID and METRICS_FILE requests may carry { SUBJECT } (version 2): the request then travels
 * with exactly one SCM_RIGHTS descriptor, a pidfd (pidfd_open(2)) of the subject, on its first
 * byte. The agent attests the subject instead of the caller, and only when the subject is a
 * live child of the caller (its PPid is the caller's pid) with the caller's real, effective and
 * saved uid and gid, still alive (and no zombie) when the answer goes out, which the pidfd
 * proves against pid reuse; otherwise it answers ERROR (DENIED). A pidfd of the caller itself names
 * the caller. A SUBJECT without a descriptor, a descriptor without a SUBJECT, two descriptors
 * or one that is not a pidfd are MALFORMED. The reply is the subject's: its SPIFFE ID, its
 * metrics file (PID and START_TIME are the subject's).
 * Replies:
 *   SVID_RESPONSE { SPIFFE_ID, CERT+ (leaf first, DER), BUNDLE+ (trust anchors, DER), EXPIRY }
 *   ID_RESPONSE   { SPIFFE_ID }
 *   METRICS_FILE_RESPONSE { PID, START_TIME } the caller's metrics file travels with the reply's
 *       bytes as one SCM_RIGHTS descriptor, open for reading and writing (metrics/layout.h); PID
 *       and START_TIME are the caller as the agent attested it (the pid in the agent's PID
 *       namespace), which name the file
 *   MEMBERSHIP_RESPONSE { GENERATION } the mesh membership set (policy/membership.h) travels
 *       with the reply's bytes as one SCM_RIGHTS descriptor: a sealed memfd, open read-only;
 *       GENERATION is the set's. The set is the node's, the same for every caller, so the request
 *       names no SUBJECT. An agent without a membership source answers ERROR (UNSUPPORTED), as
 *       does an agent that predates the request (unknown message type): both mean "no set".
 *   ERROR         { ERROR_CODE, MESSAGE }
 *   STATUS_RESPONSE { STATUS_RECORD* }        one line of tab-separated fields per record:
 *       process    pid uid exe spiffe_id expiry refresh_count has_metrics supervisor_pid
 *       connection pid fd direction tls local peer peer_id opened_at_ms read_bytes written_bytes
 *       plaintext  pid direction port opened_total  (outbound connections sent in plaintext,
 *                  counted per destination port: outbound mode auto; older agents only)
 *       destination pid tls address:port opened_total  (outbound connections opened per
 *                  destination, tls "true" or "false"; address "other" for the destinations past
 *                  the process's limit; plaintext ones first)
 *       truncated  omitted_records
 *     (expiry in unix seconds, 0 when unknown; supervisor_pid is the process that holds the
 *     identity for a SUBJECT, 0 for a process that asked itself, absent from older agents;
 *     unknown text fields are "-"; a reader skips record kinds it does not know, and reads
 *     fields by their place, so fields may be appended later)
 *
 * The parser never allocates and never reads past the length it is given: the decoded structures
 * point into the caller's buffer. Unknown tags are skipped (a newer peer may add fields); a missing
 * required tag, a repeated single-valued tag, or a TLV running past the payload is malformed.
 * The writer fills a caller-provided buffer and reports overflow instead of writing past it.
 */
#ifndef MT_IDENTITY_PROTO_H
#define MT_IDENTITY_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "../util/result.h"

#define MT_PROTO_VERSION 1
#define MT_PROTO_VERSION_SUBJECT 2
#define MT_PROTO_VERSION_MAX MT_PROTO_VERSION_SUBJECT
#define MT_PROTO_HEADER_SIZE 8
#define MT_PROTO_TLV_HEADER_SIZE 6
#define MT_PROTO_MAX_PAYLOAD (64u * 1024u)
#define MT_PROTO_MAX_FRAME (MT_PROTO_HEADER_SIZE + MT_PROTO_MAX_PAYLOAD)
#define MT_PROTO_MAX_CERTS 4
#define MT_PROTO_MAX_ANCHORS 8
#define MT_PROTO_MAX_STATUS_RECORDS 1024

enum mt_proto_type {
    MT_PROTO_SVID_REQUEST = 1,
    MT_PROTO_SVID_RESPONSE = 2,
    MT_PROTO_ERROR = 3,
    MT_PROTO_ID_REQUEST = 4,
    MT_PROTO_ID_RESPONSE = 5,
    MT_PROTO_STATUS_REQUEST = 6,
    MT_PROTO_STATUS_RESPONSE = 7,
    MT_PROTO_METRICS_FILE_REQUEST = 8,
    MT_PROTO_METRICS_FILE_RESPONSE = 9,
    MT_PROTO_MEMBERSHIP_REQUEST = 10,
    MT_PROTO_MEMBERSHIP_RESPONSE = 11,
};

enum mt_proto_tag {
    MT_PROTO_TAG_CSR = 1,
    MT_PROTO_TAG_SPIFFE_ID = 2,
    MT_PROTO_TAG_CERT = 3,
    MT_PROTO_TAG_BUNDLE = 4,
    MT_PROTO_TAG_EXPIRY = 5,     /* u64 BE, seconds since the epoch: the leaf's notAfter */
    MT_PROTO_TAG_ERROR_CODE = 6, /* u32 BE, enum mt_proto_error_code */
    MT_PROTO_TAG_MESSAGE = 7,
    MT_PROTO_TAG_STATUS_RECORD = 8, /* UTF-8 text, tab-separated fields, no newline */
    MT_PROTO_TAG_PID = 9,           /* u32 BE */
    MT_PROTO_TAG_START_TIME = 10,   /* u64 BE, clock ticks after boot (/proc/<pid>/stat 22) */
    MT_PROTO_TAG_SUBJECT = 11, /* u32 BE, the descriptors naming the subject: always 1 (v2 only) */
    MT_PROTO_TAG_GENERATION = 12, /* u64 BE, the membership set's generation */
};

enum mt_proto_error_code {
    MT_PROTO_ERROR_MALFORMED = 1,   /* the request could not be parsed */
    MT_PROTO_ERROR_UNSUPPORTED = 2, /* unknown version or message type */
    MT_PROTO_ERROR_DENIED = 3,      /* attestation found no identity for the caller */
    MT_PROTO_ERROR_BAD_CSR = 4,     /* CSR unparsable, bad signature or wrong key type */
    MT_PROTO_ERROR_INTERNAL = 5,    /* the agent failed; retry later */
};

struct mt_proto_blob {
    const uint8_t *data;
    size_t length;
};

struct mt_proto_frame {
    uint8_t version;
    uint8_t type;
    const uint8_t *payload;
    uint32_t payload_length;
};

struct mt_proto_svid_request {
    struct mt_proto_blob csr;
};

struct mt_proto_svid_response {
    struct mt_proto_blob spiffe_id;
    struct mt_proto_blob certs[MT_PROTO_MAX_CERTS];
    size_t cert_count;
    struct mt_proto_blob anchors[MT_PROTO_MAX_ANCHORS];
    size_t anchor_count;
    uint64_t expiry;
};

struct mt_proto_status_response {
    struct mt_proto_blob records[MT_PROTO_MAX_STATUS_RECORDS];
    size_t record_count;
};

struct mt_proto_metrics_file_response {
    uint32_t pid;
    uint64_t start_time;
};

struct mt_proto_error_reply {
    uint32_t code;
    struct mt_proto_blob message;
};

/*
 * Parses one frame from the start of buffer.
 * *consumed = frame size when a whole frame is present, 0 when more bytes are needed.
 * Errors: MT_ERR_PROTO_MALFORMED (bad magic), MT_ERR_PROTO_VERSION, MT_ERR_PROTO_OVERSIZED
 * (declared length > MT_PROTO_MAX_PAYLOAD; detectable from the header alone, before the body).
 */
MT_RESULT mt_proto_frame_parse(const uint8_t *buffer, size_t length, struct mt_proto_frame *frame,
                               size_t *consumed);

MT_RESULT mt_proto_decode_svid_request(const struct mt_proto_frame *frame,
                                       struct mt_proto_svid_request *request);
MT_RESULT mt_proto_decode_svid_response(const struct mt_proto_frame *frame,
                                        struct mt_proto_svid_response *response);
MT_RESULT mt_proto_decode_id_response(const struct mt_proto_frame *frame,
                                      struct mt_proto_blob *spiffe_id);
/* Records beyond MT_PROTO_MAX_STATUS_RECORDS make the message malformed. */
MT_RESULT mt_proto_decode_status_response(const struct mt_proto_frame *frame,
                                          struct mt_proto_status_response *response);
MT_RESULT mt_proto_decode_metrics_file_response(const struct mt_proto_frame *frame,
                                                struct mt_proto_metrics_file_response *response);
MT_RESULT mt_proto_decode_membership_response(const struct mt_proto_frame *frame,
                                              uint64_t *generation);
MT_RESULT mt_proto_decode_error(const struct mt_proto_frame *frame,
                                struct mt_proto_error_reply *reply);
/*
 * Whether a request frame (of any type) names a SUBJECT. Malformed: a SUBJECT in a version 1
 * frame, twice, or with a value other than the u32 1.
 */
MT_RESULT mt_proto_decode_subject(const struct mt_proto_frame *frame, bool *has_subject);

/* Builds a frame in place: begin, add TLVs, finish. Overflow is sticky and reported by finish. */
struct mt_proto_writer {
    uint8_t *buffer;
    size_t capacity;
    size_t length;
    bool overflow;
};

void mt_proto_writer_begin(struct mt_proto_writer *writer, uint8_t *buffer, size_t capacity,
                           enum mt_proto_type type);
void mt_proto_writer_put(struct mt_proto_writer *writer, enum mt_proto_tag tag, const void *value,
                         size_t length);
void mt_proto_writer_put_u32(struct mt_proto_writer *writer, enum mt_proto_tag tag, uint32_t value);
void mt_proto_writer_put_u64(struct mt_proto_writer *writer, enum mt_proto_tag tag, uint64_t value);
/* Adds the SUBJECT tag and makes the frame version 2 (MT_PROTO_VERSION_SUBJECT). */
void mt_proto_writer_put_subject(struct mt_proto_writer *writer);
/* Writes the payload length into the header; MT_ERR_TOO_LONG on overflow or oversized payload. */
MT_RESULT mt_proto_writer_finish(struct mt_proto_writer *writer, size_t *frame_length);

const char *mt_proto_error_code_name(uint32_t code);

#endif
