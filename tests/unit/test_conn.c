/*
 * Tests for core/conn*.c on the two-connection harness of conn_support.h: a client and a server
 * connection in one process, the test the network between them, forwarding bytes a few (often
 * one) at a time, so the TLS layer sees short reads and EAGAIN at every point of a record, and
 * stopping so that the kernel takes part of a record only. Every step is the call an application
 * (or its poll) would make. A test can also have the kernel take only part of a write on a
 * socket that stays writable (short_writes, below). The event-loop calls are test_conn_loop.c's.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn_support.h"
#include "test_ca.h"

#include "core/conn.h"
#include "core/table.h"
#include "tls/credentials.h"
#include "tls/x509.h"
#include "util/log.h"
#include "util/secret.h"
#include "util/sys.h"

/*
 * A kernel that takes only part of a write on a socket that stays writable, as a signal or the
 * fault soak's injection can make it: the next `count` writes (write or send) on fd of more than
 * limit bytes take limit bytes. libmeshtls reaches the kernel through syscall() (util/sys.c), so
 * this binary's own syscall() sees its writes; the test's own calls go through libc's wrappers.
 */
static struct {
    atomic_int fd;
    atomic_int count;
    size_t limit;
} short_writes = {.fd = -1};

long syscall(long number, ...)
{
    static long (*_Atomic real_syscall)(long, ...);
    va_list arguments;
    va_start(arguments, number);
    long argument[6];
    for (int i = 0; i < 6; i++)
        argument[i] = va_arg(arguments, long);
    va_end(arguments);
    bool writing = number == SYS_write || number == SYS_sendto;
    if (writing && argument[0] == atomic_load(&short_writes.fd) &&
        (size_t)argument[2] > short_writes.limit && atomic_fetch_sub(&short_writes.count, 1) > 0)
        argument[2] = (long)short_writes.limit;
    if (real_syscall == NULL) {
        long (*found)(long, ...) = NULL;
        void *symbol = dlsym(RTLD_NEXT, "syscall");
        memcpy(&found, &symbol, sizeof(found));
        real_syscall = found;
    }
    return real_syscall(number, argument[0], argument[1], argument[2], argument[3], argument[4],
                        argument[5]);
}
static void fill_pattern(unsigned char *buffer, size_t length, unsigned seed)
{
    for (size_t i = 0; i < length; i++)
        buffer[i] = (unsigned char)(i * 31 + seed + i / 251);
}

/* Sends all of buffer from one connection, forwarding one byte at a time whenever it blocks. */
static void send_all(struct pair *pair, struct mt_conn *from, const unsigned char *buffer,
                     size_t length)
{
    size_t sent = 0;
    for (int step = 0; sent < length && step < STEP_LIMIT; step++) {
        ssize_t n = mt_conn_send(from, buffer + sent, length - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        assert_int_equal(n, -1);
        assert_int_equal(errno, EAGAIN);
        forward(&pair->up, 1);
        forward(&pair->down, 1);
    }
    assert_int_equal(sent, length);
}

/* ---- handshake ---------------------------------------------------------------------------- */

static void test_mt_conn_open_pair_one_byte_at_a_time_establishes_both(void **state)
{
    struct pair *pair = *state;
    handshake(pair);
    char id[MT_SPIFFE_ID_MAX + 1];
    mt_conn_peer_id(pair->client, id, sizeof(id));
    assert_string_equal(id, SERVER_ID);
    mt_conn_peer_id(pair->server, id, sizeof(id));
    assert_string_equal(id, CLIENT_ID);
    assert_logged("mtls outbound to 127.0.0.1:8443: peer " SERVER_ID ", TLSv1.3");
    assert_logged("mtls inbound from 127.0.0.1:51234 on :8443: peer " CLIENT_ID ", TLSv1.3");
}

/* Identities are proven only once the handshake is done: none is reported before. */
static void test_mt_conn_peer_id_before_handshake_is_empty(void **state)
{
    struct pair *pair = *state;
    open_pair(pair);
    char id[MT_SPIFFE_ID_MAX + 1] = "stale";
    mt_conn_peer_id(pair->server, id, sizeof(id));
    assert_string_equal(id, "");
}

static void test_mt_conn_open_unexpected_server_identity_refused_with_reason(void **state)
{
    struct pair *pair = *state;
    pair->client_settings.outbound.expected_identity = "spiffe://example.org/ns/other";
    open_pair(pair);
    assert_true(drive(pair, 1, client_failed));
    char reason[256];
    mt_conn_failure_reason(pair->client, MT_TEXT_ON(reason));
    const char *expected =
        "server identity " SERVER_ID " does not match "
        "spiffe://example.org/ns/other expected by the default (we are " CLIENT_ID ")";
    assert_string_equal(reason, expected);
    assert_logged("refused outbound connection to 127.0.0.1:8443 (mode mtls): server identity");
    errno = 0;
    char byte;
    assert_int_equal(mt_conn_recv(pair->client, &byte, 1, 0), -1);
    assert_int_not_equal(errno, 0);
    assert_int_not_equal(errno, EAGAIN);
}

static void load_config_text(const char *text, struct mt_config *config)
{
    int fd = memfd_create("test_conn", MFD_CLOEXEC);
    assert_true(fd >= 0);
    size_t length = strlen(text);
    assert_int_equal(write(fd, text, length), (ssize_t)length);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    mt_config_set_defaults(config);
    char message[MT_CONFIG_MESSAGE_MAX];
    mt_result result = mt_config_load_file(path, config, MT_TEXT_ON(message));
    close(fd);
    if (!mt_result_is_ok(result))
        fail_msg("%s\n%s", message, text);
}

/* The allow list is read from the configuration the settings name, not from any runtime. */
static void test_mt_conn_open_client_not_in_allow_list_refused_with_rule(void **state)
{
    struct pair *pair = *state;
    load_config_text("inbound = { rules = ( { port = 8443; mode = \"strict\"; "
                     "allow = [\"spiffe://example.org/ns/other\"]; } ); };",
                     &pair->config);
    struct sockaddr_storage local = loopback(SERVER_PORT);
    struct sockaddr_storage peer = loopback(CLIENT_PORT);
    pair->server_settings.inbound = mt_policy_decide_inbound(&pair->config, &local, &peer);
    assert_int_equal(pair->server_settings.inbound.rule_index, 0);
    open_pair(pair);
    assert_true(drive(pair, 1, server_failed));
    char reason[256];
    mt_conn_failure_reason(pair->server, MT_TEXT_ON(reason));
    assert_string_equal(reason, "client identity " CLIENT_ID " is not in the allow list of "
                                "inbound.rules[0] (we are " SERVER_ID ")");
    assert_logged("refused inbound connection from 127.0.0.1:51234 on :8443 (mode strict): "
                  "client identity " CLIENT_ID);
}

/*
 * Without an identity the connection is refused with the caller's reason: meshtls_last_error()
 * gets its first 159 bytes, as it always has, and the log line all of it.
 */
static void test_mt_conn_open_no_identity_reason_kept_cut_and_logged_whole(void **state)
{
    struct pair *pair = *state;
    int ends[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ends), 0);
    char long_reason[300];
    memset(long_reason, 'r', sizeof(long_reason) - 2);
    long_reason[sizeof(long_reason) - 2] = '!';
    long_reason[sizeof(long_reason) - 1] = '\0';
    struct sockaddr_storage local = loopback(SERVER_PORT);
    struct sockaddr_storage peer = loopback(CLIENT_PORT);
    struct mt_conn *conn = mt_conn_open(ends[0], MT_TLS_SERVER, NULL, &local, &peer,
                                        &pair->server_settings, long_reason);
    assert_non_null(conn);
    char byte;
    assert_int_equal(mt_conn_recv(conn, &byte, 1, 0), -1);
    assert_int_equal(errno, ECONNRESET); /* a refused inbound connection reads as a reset */
    char reason[256];
    mt_conn_failure_reason(conn, MT_TEXT_ON(reason));
    assert_int_equal(strlen(reason), 159);
    assert_memory_equal(reason, long_reason, 159);
    assert_logged("refused inbound connection from 127.0.0.1:51234 on :8443 (mode strict): ");
    assert_logged(long_reason);
    close_end(&conn, &ends[0]);
    close(ends[1]);
}

/* The deadline is the settings' (the configuration's default would be 10 s). */
static void test_mt_conn_open_handshake_timeout_from_settings_fails_with_reason(void **state)
{
    struct pair *pair = *state;
    pair->server_settings.handshake_timeout_ms = 50;
    open_pair(pair);
    usleep(80 * 1000);
    assert_int_equal(mt_conn_socket_error(pair->server), ETIMEDOUT);
    char reason[256];
    mt_conn_failure_reason(pair->server, MT_TEXT_ON(reason));
    assert_string_equal(reason, "TLS handshake timed out after 50 ms");
    assert_logged("refused inbound connection from 127.0.0.1:51234 on :8443 (mode strict): TLS "
                  "handshake timed out after 50 ms");
}

/* ---- plaintext peers ---------------------------------------------------------------------- */

static const char plaintext[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";

static void test_mt_conn_recv_plaintext_peer_strict_refused_with_reason(void **state)
{
    struct pair *pair = *state;
    open_pair(pair);
    assert_int_equal(send(pair->up.to, plaintext, sizeof(plaintext) - 1, 0),
                     (ssize_t)sizeof(plaintext) - 1);
    char buffer[64];
    memset(buffer, 0, sizeof(buffer));
    assert_int_equal(mt_conn_recv(pair->server, buffer, sizeof(buffer), 0), -1);
    assert_int_equal(errno, ECONNRESET);
    assert_string_equal(buffer, ""); /* not one byte of it reaches the application */
    char reason[256];
    mt_conn_failure_reason(pair->server, MT_TEXT_ON(reason));
    assert_string_equal(reason, "peer did not speak TLS");
    assert_logged("refused inbound connection from 127.0.0.1:51234 on :8443 (mode strict): peer "
                  "did not speak TLS");
    /* FAILED keeps its errno for every later call. */
    assert_int_equal(mt_conn_send(pair->server, "x", 1, MSG_NOSIGNAL), -1);
    assert_int_equal(errno, ECONNRESET);
    assert_int_equal(mt_conn_socket_error(pair->server), ECONNRESET);
}

static void test_mt_conn_recv_plaintext_peer_permissive_passed_as_is(void **state)
{
    struct pair *pair = *state;
    pair->server_settings.mode = MT_INBOUND_PERMISSIVE;
    pair->server_settings.detect = true;
    open_pair(pair);
    assert_int_equal(send(pair->up.to, plaintext, sizeof(plaintext) - 1, 0),
                     (ssize_t)sizeof(plaintext) - 1);
    char buffer[64] = "";
    assert_int_equal(mt_conn_recv(pair->server, buffer, sizeof(buffer), 0),
                     (ssize_t)sizeof(plaintext) - 1);
    assert_string_equal(buffer, plaintext);
    assert_int_equal(state_of(pair->server), MT_CONN_PLAIN);
    assert_logged("plaintext inbound from 127.0.0.1:51234 on :8443 (mode permissive): not TLS");
}

/*
 * Detection waits for a whole ClientHello arriving in small pieces, then handshakes. Sixteen
 * bytes at a time, not one: detection only peeks, and a socketpair charges every write to its
 * writer until read, so the 1.4 KB of a ClientHello with a post-quantum key share, written a
 * byte at a time, fill the writer's buffer before they are all there (TCP merges such segments).
 */
static void test_mt_conn_open_permissive_mesh_client_in_pieces_handshakes(void **state)
{
    struct pair *pair = *state;
    pair->server_settings.mode = MT_INBOUND_PERMISSIVE;
    pair->server_settings.detect = true;
    open_pair(pair);
    assert_int_equal(state_of(pair->server), MT_CONN_DETECTING);
    assert_true(drive(pair, 16, both_established));
}

/* The detection deadline is the settings' (the configuration's default would be 10 s). */
static void test_mt_conn_open_permissive_silence_past_detect_timeout_passes_as_plain(void **state)
{
    struct pair *pair = *state;
    pair->server_settings.mode = MT_INBOUND_PERMISSIVE;
    pair->server_settings.detect = true;
    pair->server_settings.detect_timeout_ms = 300;
    open_pair(pair);
    assert_int_equal(mt_conn_socket_error(pair->server), 0);
    assert_int_equal(state_of(pair->server), MT_CONN_DETECTING);
    usleep(350 * 1000);
    assert_int_equal(mt_conn_socket_error(pair->server), 0);
    assert_int_equal(state_of(pair->server), MT_CONN_PLAIN);
    assert_logged("(mode permissive): nothing recognisable before the detection timeout");
}

/* ---- application bytes -------------------------------------------------------------------- */

/* Reads length bytes one at a time, forwarding one byte each way whenever nothing is there. */
static void receive_bytewise(struct pair *pair, struct mt_conn *conn, unsigned char *buffer,
                             size_t length, struct link *incoming, size_t *carried_at_first)
{
    size_t received = 0;
    for (int step = 0; received < length && step < STEP_LIMIT; step++) {
        ssize_t n = mt_conn_recv(conn, buffer + received, 1, 0);
        if (n == 1) {
            if (received == 0)
                *carried_at_first = incoming->carried;
            received++;
            continue;
        }
        assert_int_equal(n, -1);
        assert_int_equal(errno, EAGAIN);
        forward(&pair->up, 1);
        forward(&pair->down, 1);
    }
    assert_int_equal(received, length);
}

static void test_mt_conn_recv_one_byte_reads_bytes_intact_both_ways(void **state)
{
    struct pair *pair = *state;
    handshake(pair);
    enum { LENGTH = MT_TLS_RECORD_MAX + 3617 }; /* a whole record and part of another */
    static unsigned char sent[LENGTH];
    static unsigned char received[LENGTH];

    fill_pattern(sent, LENGTH, 7);
    send_all(pair, pair->client, sent, LENGTH);
    size_t carried_before = pair->up.carried;
    size_t carried_at_first = 0;
    receive_bytewise(pair, pair->server, received, LENGTH, &pair->up, &carried_at_first);
    assert_memory_equal(received, sent, LENGTH);
    /* Nothing of a record is handed over before all of it arrived. */
    assert_true(carried_at_first - carried_before >= MT_TLS_RECORD_MAX);

    fill_pattern(sent, LENGTH, 91);
    send_all(pair, pair->server, sent, LENGTH);
    memset(received, 0, LENGTH);
    receive_bytewise(pair, pair->client, received, LENGTH, &pair->down, &carried_at_first);
    assert_memory_equal(received, sent, LENGTH);
}

/*
 * A successful read leaves errno as it was, as the kernel does, although the TLS layer's own
 * receive ran into EAGAIN underneath (fails if mt_conn_recv stops preserving errno).
 */
static void test_mt_conn_recv_nothing_arrived_eagain_then_success_keeps_errno(void **state)
{
    struct pair *pair = *state;
    handshake(pair);
    char buffer[16];
    assert_int_equal(mt_conn_recv(pair->server, buffer, sizeof(buffer), 0), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(mt_conn_send(pair->client, "hello", 5, MSG_NOSIGNAL), 5);
    while (forward(&pair->up, 1) > 0)
        continue;
    errno = EDOM;
    assert_int_equal(mt_conn_recv(pair->server, buffer, sizeof(buffer), 0), 5);
    assert_int_equal(errno, EDOM);
    assert_memory_equal(buffer, "hello", 5);
}

/* FIONREAD counts decrypted bytes: 0 while a record is partial, the record once it is whole. */
static void test_mt_conn_readable_bytes_partial_record_zero_whole_counted(void **state)
{
    struct pair *pair = *state;
    handshake(pair);
    assert_int_equal(mt_conn_send(pair->client, "0123456789", 10, MSG_NOSIGNAL), 10);
    assert_int_equal(forward(&pair->up, 5), 5);
    assert_int_equal(mt_conn_readable_bytes(pair->server), 0);
    while (forward(&pair->up, 1) > 0)
        continue;
    assert_int_equal(mt_conn_readable_bytes(pair->server), 10);
}

/*
 * A kernel that takes part of a record: the record counts as written (TLS committed it), the
 * next write waits, pollers see no POLLOUT, and everything arrives intact once the network moves.
 * Later writes of several records commit them together (sent in one system call), what the kernel
 * refuses kept in the same way.
 */
static void test_mt_conn_send_kernel_takes_part_of_record_commits_whole_record(void **state)
{
    struct pair *pair = *state;
    open_pair(pair);
    int small = 4096;
    assert_int_equal(setsockopt(pair->client_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_true(drive(pair, 1, both_established));

    enum { LENGTH = 3 * MT_TLS_RECORD_MAX };
    static unsigned char sent[LENGTH];
    static unsigned char received[LENGTH];
    fill_pattern(sent, LENGTH, 3);
    errno = EDOM;
    assert_int_equal(mt_conn_send(pair->client, sent, MT_TLS_RECORD_MAX, MSG_NOSIGNAL),
                     MT_TLS_RECORD_MAX);
    assert_int_equal(errno, EDOM);
    assert_int_equal(pair->client->unsent_length, MT_TLS_RECORD_MAX);
    assert_int_equal(
        mt_conn_send(pair->client, sent + MT_TLS_RECORD_MAX, MT_TLS_RECORD_MAX, MSG_NOSIGNAL), -1);
    assert_int_equal(errno, EAGAIN);

    short kernel = 0;
    long long deadline = 0;
    assert_int_equal(mt_conn_poll_prepare(pair->client, POLLOUT, &kernel, &deadline), 0);
    assert_true(kernel & POLLOUT);
    assert_int_equal(deadline, -1);
    assert_int_equal(mt_conn_poll_finish(pair->client, POLLOUT, kernel, 0), 0);

    /* The network moves a little at a time while the client writes and the server reads. */
    size_t sent_length = MT_TLS_RECORD_MAX;
    size_t received_length = 0;
    for (int step = 0; received_length < LENGTH && step < STEP_LIMIT; step++) {
        if (sent_length < LENGTH) {
            ssize_t n =
                mt_conn_send(pair->client, sent + sent_length, LENGTH - sent_length, MSG_NOSIGNAL);
            if (n > 0)
                sent_length += (size_t)n;
            else
                assert_int_equal(errno, EAGAIN);
        } else {
            /* All reported written: the last record goes out as the client's poller steps it. */
            (void)mt_conn_socket_error(pair->client);
        }
        forward(&pair->up, 512);
        ssize_t n =
            mt_conn_recv(pair->server, received + received_length, LENGTH - received_length, 0);
        if (n > 0)
            received_length += (size_t)n;
        else
            assert_int_equal(errno, EAGAIN);
    }
    assert_int_equal(received_length, LENGTH);
    assert_memory_equal(received, sent, LENGTH);
}

/*
 * One write of several records, on a socket that takes part of the first: all are committed at
 * once, as they go to the kernel in one system call (one at a time, under Nagle each record after
 * the first waited for the peer's ACK); the rest is kept and sent in order as the network moves.
 */
static void test_mt_conn_send_several_records_kernel_takes_part_all_committed(void **state)
{
    struct pair *pair = *state;
    open_pair(pair);
    int small = 4096;
    assert_int_equal(setsockopt(pair->client_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_true(drive(pair, 1, both_established));

    enum { LENGTH = 3 * MT_TLS_RECORD_MAX };
    static unsigned char sent[LENGTH];
    static unsigned char received[LENGTH];
    fill_pattern(sent, LENGTH, 5);
    assert_int_equal(mt_conn_send(pair->client, sent, LENGTH, MSG_NOSIGNAL), LENGTH);
    assert_int_equal(mt_conn_send(pair->client, sent, 1, MSG_NOSIGNAL), -1);
    assert_int_equal(errno, EAGAIN);

    size_t received_length = 0;
    for (int step = 0; received_length < LENGTH && step < STEP_LIMIT; step++) {
        (void)mt_conn_socket_error(pair->client); /* the client's poller steps it */
        forward(&pair->up, 4096);
        ssize_t n =
            mt_conn_recv(pair->server, received + received_length, LENGTH - received_length, 0);
        if (n > 0)
            received_length += (size_t)n;
        else
            assert_int_equal(errno, EAGAIN);
    }
    assert_int_equal(received_length, LENGTH);
    assert_memory_equal(received, sent, LENGTH);
}

/*
 * The server's first write carries the NewSessionTicket it held, and the kernel takes only part
 * of the ticket, several times, while the socket stays writable: the call writes on until the
 * record has gone, so the reply reaches the client with no further call on the server. No poller
 * would be woken for it: an edge-triggered one waits for the socket to turn writable, which it
 * never stopped being (fails if a short write is taken for EAGAIN: the reply stayed in the
 * session, and the fault soak's edge-triggered server never answered).
 */
static void test_mt_conn_send_held_ticket_written_short_writes_on_until_sent(void **state)
{
    struct pair *pair = *state;
    pair->resuming = true;
    handshake(pair);
    size_t carried_before = pair->down.carried;
    short_writes.limit = 7;
    atomic_store(&short_writes.count, 3);
    atomic_store(&short_writes.fd, pair->server_fd);
    ssize_t written = mt_conn_send(pair->server, "reply", 5, MSG_NOSIGNAL);
    atomic_store(&short_writes.fd, -1);
    assert_int_equal(written, 5);

    /* What the server wrote reaches the client; nothing more is asked of the server. */
    while (forward(&pair->down, sizeof(pair->down.held)) > 0)
        continue;
    unsigned char received[8];
    size_t received_length = 0;
    for (;;) {
        ssize_t n = mt_conn_recv(pair->client, received + received_length,
                                 sizeof(received) - received_length, 0);
        if (n <= 0)
            break;
        received_length += (size_t)n;
    }
    assert_int_equal(received_length, 5);
    assert_memory_equal(received, "reply", 5);
    /* The ticket went first (a record of its own, larger than the reply's), in short writes. */
    assert_true(pair->down.carried - carried_before > 100);
    assert_true(atomic_load(&short_writes.count) < 0);
}

static void ignore_signal(int signal_number)
{
    (void)signal_number;
}

struct interrupter {
    struct pair *pair;
    pthread_t writer;
    atomic_bool stop;
};

/* Interrupts the writer while its socket is full, then lets the network move. */
static void *interrupt_then_pump(void *argument)
{
    struct interrupter *interrupter = argument;
    for (int i = 0; i < 5; i++) {
        usleep(20 * 1000);
        pthread_kill(interrupter->writer, SIGUSR1);
    }
    while (!atomic_load(&interrupter->stop)) {
        if (forward(&interrupter->pair->up, 4096) == 0)
            usleep(100);
    }
    return NULL;
}

/*
 * A blocking write interrupted by a signal (no SA_RESTART) after it committed a record: the
 * record is written before the call returns its count, as the kernel counts only what it took.
 * Kept instead, it is lost to a program that exits right after (fails if the EINTR ends the
 * call with the record still kept).
 */
static void
test_mt_conn_send_blocking_signal_after_commit_writes_record_before_returning(void **state)
{
    struct pair *pair = *state;
    open_pair(pair);
    int small = 4096;
    assert_int_equal(setsockopt(pair->client_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_true(drive(pair, 1, both_established));
    set_nonblocking(pair->client_fd, false);
    mt_conn_note_nonblocking(pair->client, false);
    struct sigaction action = {.sa_handler = ignore_signal};
    struct sigaction previous;
    assert_int_equal(sigaction(SIGUSR1, &action, &previous), 0);

    static unsigned char sent[MT_TLS_RECORD_MAX];
    static unsigned char received[MT_TLS_RECORD_MAX];
    fill_pattern(sent, sizeof(sent), 11);
    struct interrupter interrupter = {.pair = pair, .writer = pthread_self()};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, interrupt_then_pump, &interrupter), 0);
    ssize_t written = mt_conn_send(pair->client, sent, sizeof(sent), MSG_NOSIGNAL);
    bool kept = mt_tls_outgoing_pending(pair->client->tls);
    atomic_store(&interrupter.stop, true);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(sigaction(SIGUSR1, &previous, NULL), 0);
    set_nonblocking(pair->client_fd, true);
    mt_conn_note_nonblocking(pair->client, true);

    assert_int_equal(written, MT_TLS_RECORD_MAX);
    assert_false(kept);
    size_t carried = 0;
    receive_bytewise(pair, pair->server, received, sizeof(received), &pair->up, &carried);
    assert_memory_equal(received, sent, sizeof(sent));
}

/* A blocking socket waits, lock released, until SO_RCVTIMEO, then says EAGAIN as the kernel. */
/*
 * A vector that fits in one record leaves as one record in one send, as the kernel would send it
 * in one segment (fails if each piece becomes a record of its own: under Nagle the second waited
 * for the peer's delayed ACK of the first, tests/integration/test_nagle_wire.py).
 */
static void test_mt_conn_send_vector_fits_one_record_sent_as_one_record(void **state)
{
    struct pair *pair = *state;
    handshake(pair);
    char header[] = "HTTP/1.0 200 OK\r\n\r\n";
    char body[] = "a small body\n";
    struct iovec vector[] = {{header, sizeof(header) - 1}, {NULL, 0}, {body, sizeof(body) - 1}};
    size_t length = sizeof(header) - 1 + sizeof(body) - 1;
    assert_int_equal(mt_conn_send_vector(pair->client, vector, 3, MSG_NOSIGNAL), (ssize_t)length);
    unsigned char wire[512];
    ssize_t n = read(pair->up.from, wire, sizeof(wire));
    /* TLS 1.3 (RFC 8446 §5.2): application_data (23) outside; inside, the bytes, their content
     * type (one byte) and AES-GCM's 16-byte tag. */
    size_t body_length = length + 1 + 16;
    assert_int_equal(n, (ssize_t)(MT_TLS_RECORD_HEADER_SIZE + body_length));
    assert_int_equal(wire[0], 23);
    assert_int_equal(((size_t)wire[3] << 8) | wire[4], body_length);
}

static void test_mt_conn_recv_blocking_nothing_arrives_eagain_at_rcvtimeo(void **state)
{
    struct pair *pair = *state;
    handshake(pair);
    set_nonblocking(pair->server_fd, false);
    struct timeval timeout = {0, 60 * 1000};
    assert_int_equal(
        setsockopt(pair->server_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
    long long started = mt_sys_now_ms();
    char byte;
    assert_int_equal(mt_conn_recv(pair->server, &byte, 1, 0), -1);
    assert_int_equal(errno, EAGAIN);
    assert_true(mt_sys_now_ms() - started >= 50);
    set_nonblocking(pair->server_fd, true);
}

/* ---- shutdown and close ------------------------------------------------------------------- */

/* shutdown(SHUT_WR): what was written arrives, then the end; the other direction still works. */
static void test_mt_conn_shutdown_write_after_data_ends_stream_in_order(void **state)
{
    struct pair *pair = *state;
    handshake(pair);
    assert_int_equal(mt_conn_send(pair->client, "last words", 10, MSG_NOSIGNAL), 10);
    assert_int_equal(mt_conn_shutdown(pair->client, SHUT_WR), 0);
    assert_int_equal(mt_conn_send(pair->client, "more", 4, MSG_NOSIGNAL), -1);
    assert_int_equal(errno, EPIPE);

    unsigned char buffer[32];
    size_t carried = 0;
    receive_bytewise(pair, pair->server, buffer, 10, &pair->up, &carried);
    assert_memory_equal(buffer, "last words", 10);
    ssize_t n = -1;
    for (int step = 0; step < STEP_LIMIT; step++) {
        n = mt_conn_recv(pair->server, buffer, sizeof(buffer), 0);
        if (n != -1 || errno != EAGAIN)
            break;
        forward(&pair->up, 1);
    }
    assert_int_equal(n, 0);

    assert_int_equal(mt_conn_send(pair->server, "reply", 5, MSG_NOSIGNAL), 5);
    receive_bytewise(pair, pair->client, buffer, 5, &pair->down, &carried);
    assert_memory_equal(buffer, "reply", 5);
}

/* shutdown of a copy made by fork and not used since sends nothing: not even close_notify. */
static void test_mt_conn_shutdown_shared_copy_sends_nothing(void **state)
{
    struct pair *pair = *state;
    handshake(pair);
    assert_int_equal(mt_conn_send(pair->client, "before fork", 11, MSG_NOSIGNAL), 11);
    unsigned char buffer[32];
    size_t carried = 0;
    receive_bytewise(pair, pair->server, buffer, 11, &pair->up, &carried);
    mt_conn_mark_shared(pair->client);

    assert_int_equal(mt_conn_shutdown(pair->client, SHUT_WR), 0);
    char byte;
    assert_int_equal(recv(pair->up.from, &byte, 1, MSG_DONTWAIT | MSG_PEEK), -1);
    assert_int_equal(errno, EAGAIN);
    /* Writing after it fails as after the kernel's own shutdown. */
    assert_int_equal(mt_conn_send(pair->client, "more", 4, MSG_NOSIGNAL), -1);
    assert_int_equal(errno, EPIPE);
}

/*
 * A fork marks both copies of every connection shared (core/process.h) in a process that met no
 * hook before it: opening a connection registers the fork handlers. Without them the parent's
 * close of its copy would send close_notify on the stream its child goes on with.
 */
static void test_mt_conn_open_fork_marks_the_copies_shared(void **state)
{
    struct pair *pair = *state;
    handshake(pair);
    assert_false(pair->client->shared);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    int status = -1;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(status, 0);
    assert_true(pair->client->shared);
    assert_true(pair->server->shared);
}

struct pump {
    struct pair *pair;
    atomic_bool stop;
};

static void *pump_until_stopped(void *argument)
{
    struct pump *pump = argument;
    while (!atomic_load(&pump->stop)) {
        if (forward(&pump->pair->up, 4096) == 0 && forward(&pump->pair->down, 4096) == 0)
            usleep(100);
    }
    return NULL;
}

/* Reads the server side until the end; returns the bytes read, or -1 when it failed instead. */
static ssize_t read_to_end(struct pair *pair, unsigned char *buffer, size_t capacity)
{
    size_t total = 0;
    for (int step = 0; step < STEP_LIMIT; step++) {
        forward(&pair->up, 4096);
        ssize_t n = mt_conn_recv(pair->server, buffer + total, capacity - total, 0);
        if (n == 0)
            return (ssize_t)total;
        if (n < 0 && errno != EAGAIN)
            return -1;
        if (n > 0)
            total += (size_t)n;
    }
    return -1;
}

/* close() sends the record the kernel had not taken, then close_notify: a clean end, all there. */
static void test_mt_conn_close_unsent_record_flushed_before_close_notify(void **state)
{
    struct pair *pair = *state;
    open_pair(pair);
    int small = 4096;
    assert_int_equal(setsockopt(pair->client_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_true(drive(pair, 1, both_established));
    static unsigned char sent[MT_TLS_RECORD_MAX];
    static unsigned char received[MT_TLS_RECORD_MAX + 1];
    fill_pattern(sent, sizeof(sent), 5);
    assert_int_equal(mt_conn_send(pair->client, sent, sizeof(sent), MSG_NOSIGNAL),
                     MT_TLS_RECORD_MAX);
    assert_true(pair->client->unsent_length > 0);

    struct pump pump = {.pair = pair};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, pump_until_stopped, &pump), 0);
    close_end(&pair->client, &pair->client_fd);
    atomic_store(&pump.stop, true);
    assert_int_equal(pthread_join(thread, NULL), 0);

    assert_int_equal(read_to_end(pair, received, sizeof(received)), MT_TLS_RECORD_MAX);
    assert_memory_equal(received, sent, sizeof(sent));
    assert_true(strstr(logged, "mtls connection outbound") == NULL);
}

/* A peer that never reads: close() gives up at its deadline and says what was left unsent. */
static void test_mt_conn_close_peer_not_reading_fails_at_flush_deadline(void **state)
{
    struct pair *pair = *state;
    open_pair(pair);
    int small = 4096;
    assert_int_equal(setsockopt(pair->client_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_true(drive(pair, 1, both_established));
    static unsigned char sent[MT_TLS_RECORD_MAX];
    fill_pattern(sent, sizeof(sent), 9);
    assert_int_equal(mt_conn_send(pair->client, sent, sizeof(sent), MSG_NOSIGNAL),
                     MT_TLS_RECORD_MAX);
    long long started = mt_sys_now_ms();
    close_end(&pair->client, &pair->client_fd);
    assert_true(mt_sys_now_ms() - started >= 450);
    assert_logged("mtls connection outbound to 127.0.0.1:8443 (mode mtls): data written before "
                  "closing not sent within 500 ms (the peer is not reading)");
}

int main(void)
{
#define PAIR_TEST(name) cmocka_unit_test_setup_teardown(name, pair_setup, pair_teardown)
    const struct CMUnitTest tests[] = {
        PAIR_TEST(test_mt_conn_open_pair_one_byte_at_a_time_establishes_both),
        PAIR_TEST(test_mt_conn_peer_id_before_handshake_is_empty),
        PAIR_TEST(test_mt_conn_open_unexpected_server_identity_refused_with_reason),
        PAIR_TEST(test_mt_conn_open_client_not_in_allow_list_refused_with_rule),
        PAIR_TEST(test_mt_conn_open_no_identity_reason_kept_cut_and_logged_whole),
        PAIR_TEST(test_mt_conn_open_handshake_timeout_from_settings_fails_with_reason),
        PAIR_TEST(test_mt_conn_recv_plaintext_peer_strict_refused_with_reason),
        PAIR_TEST(test_mt_conn_recv_plaintext_peer_permissive_passed_as_is),
        PAIR_TEST(test_mt_conn_open_permissive_mesh_client_in_pieces_handshakes),
        PAIR_TEST(test_mt_conn_open_permissive_silence_past_detect_timeout_passes_as_plain),
        PAIR_TEST(test_mt_conn_recv_one_byte_reads_bytes_intact_both_ways),
        PAIR_TEST(test_mt_conn_recv_nothing_arrived_eagain_then_success_keeps_errno),
        PAIR_TEST(test_mt_conn_readable_bytes_partial_record_zero_whole_counted),
        PAIR_TEST(test_mt_conn_send_kernel_takes_part_of_record_commits_whole_record),
        PAIR_TEST(test_mt_conn_send_several_records_kernel_takes_part_all_committed),
        PAIR_TEST(test_mt_conn_send_held_ticket_written_short_writes_on_until_sent),
        PAIR_TEST(test_mt_conn_send_blocking_signal_after_commit_writes_record_before_returning),
        PAIR_TEST(test_mt_conn_send_vector_fits_one_record_sent_as_one_record),
        PAIR_TEST(test_mt_conn_recv_blocking_nothing_arrives_eagain_at_rcvtimeo),
        PAIR_TEST(test_mt_conn_shutdown_write_after_data_ends_stream_in_order),
        PAIR_TEST(test_mt_conn_shutdown_shared_copy_sends_nothing),
        PAIR_TEST(test_mt_conn_open_fork_marks_the_copies_shared),
        PAIR_TEST(test_mt_conn_close_unsent_record_flushed_before_close_notify),
        PAIR_TEST(test_mt_conn_close_peer_not_reading_fails_at_flush_deadline),
    };
#undef PAIR_TEST
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
