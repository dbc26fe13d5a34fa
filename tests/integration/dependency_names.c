/*
 * A program that defines and exports (-rdynamic) functions named like libconfig's and wolfSSL's,
 * with signatures of its own, as lighttpd does with config_init and config_read: the names of
 * libmeshtls's dependencies are not reserved, and a preload that imports them by name has its
 * calls bound to the program's functions. Each one aborts with a marker line when anyone but the
 * program itself calls it, so a preload that reaches one fails before main.
 *
 *   dependency_names serve PORT       listen on 127.0.0.1:PORT; for each connection read a line
 *                                     and answer "echo: LINE\n", then close; runs until killed
 *   dependency_names connect PORT TEXT
 *                                     connect to 127.0.0.1:PORT, send "TEXT\n", print the answer
 *
 * Both first call a few of their own functions the way the program means them, which must work.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool calling_own_function;

static long called(const char *name, long argument)
{
    if (!calling_own_function) {
        fprintf(stderr, "dependency_names: the program's %s was called from outside it\n", name);
        fflush(stderr);
        abort();
    }
    return argument + 1;
}

/* Exported, with a signature unlike the library's: long name(long). */
#define PROGRAM_FUNCTION(name)                                                                     \
    __attribute__((visibility("default"))) long name(long argument);                               \
    long name(long argument)                                                                       \
    {                                                                                              \
        return called(#name, argument);                                                            \
    }

PROGRAM_FUNCTION(config_init)
PROGRAM_FUNCTION(config_destroy)
PROGRAM_FUNCTION(config_read)
PROGRAM_FUNCTION(config_read_file)
PROGRAM_FUNCTION(config_read_string)
PROGRAM_FUNCTION(config_lookup)
PROGRAM_FUNCTION(config_lookup_string)
PROGRAM_FUNCTION(config_lookup_int)
PROGRAM_FUNCTION(config_setting_length)
PROGRAM_FUNCTION(config_setting_get_elem)
PROGRAM_FUNCTION(config_setting_get_member)
PROGRAM_FUNCTION(config_setting_get_string)
PROGRAM_FUNCTION(config_setting_get_int)
PROGRAM_FUNCTION(config_setting_get_int64)
PROGRAM_FUNCTION(config_setting_get_bool)
PROGRAM_FUNCTION(config_setting_lookup)
PROGRAM_FUNCTION(wolfSSL_Init)
PROGRAM_FUNCTION(wolfSSL_CTX_new)
PROGRAM_FUNCTION(wolfSSL_new)
PROGRAM_FUNCTION(wolfSSL_connect)
PROGRAM_FUNCTION(wolfSSL_accept)
PROGRAM_FUNCTION(wolfSSL_read)
PROGRAM_FUNCTION(wolfSSL_write)
PROGRAM_FUNCTION(wolfSSL_free)
PROGRAM_FUNCTION(wc_InitRng)

static bool own_functions_work(void)
{
    calling_own_function = true;
    bool ok = config_init(1) == 2 && config_read(2) == 3 && wolfSSL_Init(3) == 4;
    calling_own_function = false;
    return ok;
}

static struct sockaddr_in loopback(const char *port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

/* One line (at most size - 1 bytes, without its newline); false on EOF or error first. */
static bool read_line(int fd, char *line, size_t size)
{
    size_t length = 0;
    while (length + 1 < size) {
        ssize_t n = read(fd, line + length, 1);
        if (n <= 0)
            return false;
        if (line[length] == '\n')
            break;
        length++;
    }
    line[length] = '\0';
    return true;
}

static int serve(const char *port)
{
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in address = loopback(port);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(listener, 16) != 0) {
        perror("dependency_names: listen");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            continue;
        char line[256], answer[300];
        if (read_line(fd, line, sizeof(line))) {
            int length = snprintf(answer, sizeof(answer), "echo: %s\n", line);
            if (write(fd, answer, (size_t)length) != length)
                perror("dependency_names: write");
        }
        close(fd);
    }
}

static int connect_once(const char *port, const char *text)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = loopback(port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        perror("dependency_names: connect");
        return 1;
    }
    char request[256], answer[300];
    int length = snprintf(request, sizeof(request), "%s\n", text);
    if (write(fd, request, (size_t)length) != length || !read_line(fd, answer, sizeof(answer))) {
        perror("dependency_names: exchange");
        return 1;
    }
    printf("%s\n", answer);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (!own_functions_work()) {
        fprintf(stderr, "dependency_names: the program's own functions answered wrongly\n");
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2]);
    if (argc == 4 && strcmp(argv[1], "connect") == 0)
        return connect_once(argv[2], argv[3]);
    fprintf(stderr, "usage: dependency_names serve PORT | connect PORT TEXT\n");
    return 2;
}
