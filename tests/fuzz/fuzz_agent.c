/*
 * libFuzzer target for what the agent parses from other local processes: agent protocol
 * requests, as the server dispatches them (frame, then the decoder of the message type, then for
 * an SVID request the CSR itself, signed by a throwaway CA made once), and metrics files
 * (metrics/reader.c), rendered to Prometheus text afterwards.
 *
 * An input starting with "MT" is a request frame; any other input is laid over a valid, empty
 * metrics file: its first 4 bytes become chunk_count, the rest the first chunk (chunk header and
 * records). Must never print, and allocates only what the code under test allocates.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/ca.h"
#include "identity/proto.h"
#include "metrics/reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IMAGE_SIZE (MT_METRICS_HEADER_SIZE + 2 * MT_METRICS_CHUNK_SIZE)

static struct mt_ca ca;
static bool have_ca;

/* The signer's generator is allocated by wolfSSL, but the signer itself sits in locked memory,
 * which LeakSanitizer does not scan: freed at exit so that it is not reported as a leak. */
static void free_ca(void)
{
    mt_x509_signer_free(ca.signer);
    mt_x509_key_free(ca.key);
}

static void make_ca(void)
{
    if (have_ca)
        return;
    atexit(free_ca);
    time_t now = 1700000000;
    if (!mt_result_is_ok(mt_x509_key_generate(&ca.key)) ||
        !mt_result_is_ok(mt_x509_ca_create(ca.key, "meshtls.local", now - 10, now + 86400,
                                           ca.cert_der, sizeof(ca.cert_der), &ca.cert_length)) ||
        !mt_result_is_ok(mt_x509_signer_new(ca.cert_der, ca.cert_length, ca.key, &ca.signer)))
        abort();
    ca.not_after = now + 86400;
    have_ca = true;
}

static void fuzz_request(const uint8_t *data, size_t size)
{
    struct mt_proto_frame frame;
    size_t consumed = 0;
    if (!mt_result_is_ok(mt_proto_frame_parse(data, size, &frame, &consumed)) || consumed == 0)
        return;
    if (frame.type == MT_PROTO_SVID_REQUEST) {
        struct mt_proto_svid_request request;
        if (!mt_result_is_ok(mt_proto_decode_svid_request(&frame, &request)))
            return;
        make_ca();
        static uint8_t leaf[MT_X509_CERT_DER_MAX];
        size_t length = 0;
        time_t not_after = 0;
        mt_result issued =
            mt_ca_issue(&ca, request.csr.data, request.csr.length, "spiffe://meshtls.local/uid/0",
                        1700000000, 3600, leaf, sizeof(leaf), &length, &not_after);
        /* Whatever the agent signs must be a valid X.509-SVID for the ID it chose. */
        char id[MT_SPIFFE_ID_MAX + 1];
        if (mt_result_is_ok(issued) &&
            (!mt_result_is_ok(mt_x509_svid_check(leaf, length, id, sizeof(id), NULL)) ||
             strcmp(id, "spiffe://meshtls.local/uid/0") != 0))
            abort();
    } else if (frame.type == MT_PROTO_STATUS_RESPONSE) {
        static struct mt_proto_status_response response;
        if (mt_result_is_ok(mt_proto_decode_status_response(&frame, &response)) &&
            response.record_count > MT_PROTO_MAX_STATUS_RECORDS)
            abort();
    }
}

static void fuzz_metrics_file(const uint8_t *data, size_t size)
{
    uint8_t *image = calloc(1, IMAGE_SIZE);
    if (image == NULL)
        return;
    struct mt_metrics_file_header *header = (void *)image;
    memcpy(header->magic, MT_METRICS_MAGIC, sizeof(header->magic));
    header->version = MT_METRICS_LAYOUT_VERSION;
    header->header_size = MT_METRICS_HEADER_SIZE;
    header->chunk_size = MT_METRICS_CHUNK_SIZE;
    size_t count_bytes = size < 4 ? size : 4;
    memcpy(&header->chunk_count, data, count_bytes);
    size_t rest = size - count_bytes;
    if (rest > 2 * MT_METRICS_CHUNK_SIZE)
        rest = 2 * MT_METRICS_CHUNK_SIZE;
    memcpy(image + MT_METRICS_HEADER_SIZE, data + count_bytes, rest);

    struct mt_metrics_collection collection = {0};
    struct mt_metrics_process process;
    memset(&process, 0, sizeof(process));
    if (!mt_result_is_ok(mt_metrics_process_parse(image, IMAGE_SIZE, &process))) {
        free(image);
        return;
    }
    collection.processes = &process;
    collection.count = 1;
    struct mt_metrics_text text = {0};
    mt_metrics_render(&collection, &text);
    mt_metrics_text_free(&text);
    mt_metrics_process_cleanup(&process);
    free(image); /* parsing copies what it keeps */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 2 && data[0] == 'M' && data[1] == 'T')
        fuzz_request(data, size);
    else
        fuzz_metrics_file(data, size);
    return 0;
}
