/*
 * The ClientHello detector (see detect.h): TLS record and handshake framing, read just far enough
 * to find the ALPN extension of the first ClientHello.
 *
 * Owns the byte-level reading of a ClientHello: record headers (RFC 8446 section 5.1), the
 * ClientHello fields (section 4.1.2), the extension list (section 4.2) and the ALPN extension
 * (RFC 7301 section 3.1). Must never allocate, keep state between calls, read past the length it
 * was given, or look at byte MT_DETECT_BYTES_MAX or beyond. It judges only the framing needed to
 * find the ALPN protocols; the TLS library that then reads the same bytes judges the rest.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "detect.h"

#define HANDSHAKE_CLIENT_HELLO 1
#define EXTENSION_ALPN 16
#define RANDOM_SIZE 32
#define SESSION_ID_MAX 32

/* What reading the next byte ran into. */
enum step {
    STEP_OK,
    STEP_NEED_MORE, /* the byte has not arrived yet */
    STEP_NOT_TLS,   /* the first record header rules TLS out */
    STEP_OTHER,     /* a ClientHello, but one this reader does not accept as mesh */
};

#define STEP_GUARD(expression)                                                                     \
    do {                                                                                           \
        enum step step_guard_ = (expression);                                                      \
        if (step_guard_ != STEP_OK)                                                                \
            return step_guard_;                                                                    \
    } while (0)

/*
 * The handshake bytes carried by consecutive handshake records, read one at a time as a single
 * stream. message_left bounds the reading to the ClientHello itself.
 */
struct reader {
    const uint8_t *data;
    size_t length;
    size_t position;     /* next byte of data to look at */
    size_t record_left;  /* bytes of the current record's body not read yet */
    size_t message_left; /* bytes of the ClientHello body not read yet */
};

/*
 * Opens the record whose header starts at position. Each header byte is judged as soon as it is
 * there, so plaintext is recognised from its first byte. A bad first header means "not TLS"; a
 * bad later one means a ClientHello this reader does not accept.
 */
static enum step open_record(struct reader *reader)
{
    enum step bad = reader->position == 0 ? STEP_NOT_TLS : STEP_OTHER;
    if (reader->position + MT_TLS_RECORD_HEADER_SIZE > MT_DETECT_BYTES_MAX)
        return STEP_OTHER;
    const uint8_t *header = reader->data + reader->position;
    size_t available = reader->length - reader->position;
    if (available >= 1 && header[0] != MT_TLS_CONTENT_HANDSHAKE)
        return bad;
    if (available >= 2 && header[1] != 3)
        return bad;
    if (available >= 3 && header[2] > 4)
        return bad;
    /* A high length byte above 0x40 already means more than 2^14. */
    if (available >= 4 && header[3] > (MT_TLS_RECORD_MAX >> 8))
        return bad;
    if (available < MT_TLS_RECORD_HEADER_SIZE)
        return STEP_NEED_MORE;
    size_t record_length = (size_t)header[3] << 8 | header[4];
    if (record_length == 0 || record_length > MT_TLS_RECORD_MAX)
        return bad;
    reader->position += MT_TLS_RECORD_HEADER_SIZE;
    reader->record_left = record_length;
    return STEP_OK;
}

/* The next handshake byte, across record boundaries. */
static enum step next_byte(struct reader *reader, uint8_t *byte)
{
    while (reader->record_left == 0)
        STEP_GUARD(open_record(reader));
    if (reader->position >= MT_DETECT_BYTES_MAX)
        return STEP_OTHER;
    if (reader->position >= reader->length)
        return STEP_NEED_MORE;
    *byte = reader->data[reader->position++];
    reader->record_left--;
    return STEP_OK;
}

/* The next byte of the ClientHello body; running off its end is malformed. */
static enum step read_u8(struct reader *reader, unsigned *value)
{
    if (reader->message_left == 0)
        return STEP_OTHER;
    uint8_t byte;
    STEP_GUARD(next_byte(reader, &byte));
    reader->message_left--;
    *value = byte;
    return STEP_OK;
}

static enum step read_u16(struct reader *reader, unsigned *value)
{
    unsigned high;
    unsigned low;
    STEP_GUARD(read_u8(reader, &high));
    STEP_GUARD(read_u8(reader, &low));
    *value = high << 8 | low;
    return STEP_OK;
}

static enum step skip(struct reader *reader, size_t count)
{
    unsigned ignored;
    for (size_t i = 0; i < count; i++)
        STEP_GUARD(read_u8(reader, &ignored));
    return STEP_OK;
}

/* Reads one ProtocolName of length bytes and says whether it is the mesh protocol. */
static enum step read_protocol_name(struct reader *reader, unsigned length, bool *is_mesh)
{
    static const char mesh[] = MT_TLS_MESH_ALPN;
    bool equal = length == sizeof(mesh) - 1;
    for (unsigned i = 0; i < length; i++) {
        unsigned byte;
        STEP_GUARD(read_u8(reader, &byte));
        equal = equal && byte == (unsigned char)mesh[i];
    }
    *is_mesh = *is_mesh || equal;
    return STEP_OK;
}

/* RFC 7301 section 3.1: ProtocolNameList protocol_name_list<2..2^16-1>, names <1..2^8-1>. */
static enum step read_alpn(struct reader *reader, unsigned extension_length, bool *is_mesh)
{
    unsigned list_length;
    STEP_GUARD(read_u16(reader, &list_length));
    if (list_length < 2 || list_length + 2 != extension_length)
        return STEP_OTHER;
    while (list_length > 0) {
        unsigned name_length;
        STEP_GUARD(read_u8(reader, &name_length));
        if (name_length == 0 || name_length + 1 > list_length)
            return STEP_OTHER;
        STEP_GUARD(read_protocol_name(reader, name_length, is_mesh));
        list_length -= name_length + 1;
    }
    return STEP_OK;
}

/* RFC 8446 section 4.1.2, the fields before the extensions. */
static enum step read_client_hello_fields(struct reader *reader)
{
    unsigned length;
    STEP_GUARD(skip(reader, 2 + RANDOM_SIZE)); /* legacy_version, random */
    STEP_GUARD(read_u8(reader, &length));      /* legacy_session_id<0..32> */
    if (length > SESSION_ID_MAX)
        return STEP_OTHER;
    STEP_GUARD(skip(reader, length));
    STEP_GUARD(read_u16(reader, &length)); /* cipher_suites<2..2^16-2> */
    if (length < 2 || length % 2 != 0)
        return STEP_OTHER;
    STEP_GUARD(skip(reader, length));
    STEP_GUARD(read_u8(reader, &length)); /* legacy_compression_methods<1..2^8-1> */
    if (length < 1)
        return STEP_OTHER;
    return skip(reader, length);
}

/* The extension list, which ends the ClientHello exactly; *is_mesh when ALPN offers the mark. */
static enum step read_extensions(struct reader *reader, bool *is_mesh)
{
    /* A ClientHello may end before the list (TLS 1.2 and older): then it carries no ALPN. */
    if (reader->message_left == 0)
        return STEP_OK;
    unsigned list_length;
    STEP_GUARD(read_u16(reader, &list_length));
    if (list_length != reader->message_left)
        return STEP_OTHER;
    while (reader->message_left > 0) {
        unsigned type;
        unsigned length;
        STEP_GUARD(read_u16(reader, &type));
        STEP_GUARD(read_u16(reader, &length));
        if (length > reader->message_left)
            return STEP_OTHER;
        if (type == EXTENSION_ALPN)
            STEP_GUARD(read_alpn(reader, length, is_mesh));
        else
            STEP_GUARD(skip(reader, length));
    }
    return STEP_OK;
}

static enum step read_client_hello(struct reader *reader, bool *is_mesh)
{
    uint8_t type;
    STEP_GUARD(next_byte(reader, &type));
    if (type != HANDSHAKE_CLIENT_HELLO)
        return STEP_NOT_TLS;
    size_t body_length = 0;
    for (int i = 0; i < 3; i++) {
        uint8_t byte;
        STEP_GUARD(next_byte(reader, &byte));
        body_length = body_length << 8 | byte;
    }
    /* Decided from the header alone: even unsplit, this ClientHello would not fit the window. */
    if (body_length > MT_DETECT_BYTES_MAX - MT_TLS_RECORD_HEADER_SIZE - 4)
        return STEP_OTHER;
    reader->message_left = body_length;
    STEP_GUARD(read_client_hello_fields(reader));
    return read_extensions(reader, is_mesh);
}

enum mt_detect_result mt_detect_client_hello(const void *data, size_t length)
{
    if (data == NULL || length == 0)
        return MT_DETECT_NEED_MORE;
    struct reader reader = {.data = data, .length = length};
    bool is_mesh = false;
    switch (read_client_hello(&reader, &is_mesh)) {
    case STEP_OK:
        return is_mesh ? MT_DETECT_TLS_MESH : MT_DETECT_TLS_OTHER;
    case STEP_NEED_MORE:
        return MT_DETECT_NEED_MORE;
    case STEP_NOT_TLS:
        return MT_DETECT_NOT_TLS;
    case STEP_OTHER:
    default:
        return MT_DETECT_TLS_OTHER;
    }
}

const char *mt_detect_result_name(enum mt_detect_result result)
{
    switch (result) {
    case MT_DETECT_NEED_MORE:
        return "need more";
    case MT_DETECT_NOT_TLS:
        return "not TLS";
    case MT_DETECT_TLS_MESH:
        return "mesh TLS";
    case MT_DETECT_TLS_OTHER:
        return "other TLS";
    }
    return "unknown";
}
