/*
 * Replays a fuzzing corpus without libFuzzer: every regular file in the directory given as the
 * only argument is passed once to LLVMFuzzerTestOneInput, in name order.
 *
 * This lets the corpora run as ordinary regression tests with any compiler (and under the
 * sanitizers of the test build). Each input is copied into an allocation of exactly its size, so
 * a target that reads past the end is caught by AddressSanitizer. An empty or unreadable corpus
 * is a failure: a regression test that replays nothing tests nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads path into a new allocation of exactly its size (at least one byte, for malloc). */
static uint8_t *read_input(const char *path, size_t *size)
{
    FILE *stream = fopen(path, "rbe");
    if (stream == NULL)
        return NULL;
    uint8_t *data = NULL;
    struct stat status;
    if (fstat(fileno(stream), &status) != 0 || status.st_size < 0)
        goto out;
    *size = (size_t)status.st_size;
    data = malloc(*size > 0 ? *size : 1);
    if (data == NULL)
        goto out;
    if (fread(data, 1, *size, stream) != *size) {
        free(data);
        data = NULL;
    }
out:
    fclose(stream);
    return data;
}

static int skip_hidden(const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIRECTORY\n", argv[0]);
        return 2;
    }
    struct dirent **entries = NULL;
    int count = scandir(argv[1], &entries, skip_hidden, alphasort);
    if (count < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    int replayed = 0;
    int status = 0;
    for (int i = 0; i < count; i++) {
        char path[4096];
        if (snprintf(path, sizeof(path), "%s/%s", argv[1], entries[i]->d_name) >=
            (int)sizeof(path)) {
            fprintf(stderr, "%s/%s: path too long\n", argv[1], entries[i]->d_name);
            status = 1;
            continue;
        }
        struct stat info;
        if (stat(path, &info) != 0 || !S_ISREG(info.st_mode))
            continue;
        size_t size = 0;
        uint8_t *data = read_input(path, &size);
        if (data == NULL) {
            fprintf(stderr, "%s: cannot read\n", path);
            status = 1;
            continue;
        }
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        replayed++;
    }
    for (int i = 0; i < count; i++)
        free(entries[i]);
    free(entries);
    printf("replayed %d inputs from %s\n", replayed, argv[1]);
    if (replayed == 0) {
        fprintf(stderr, "%s: no inputs\n", argv[1]);
        return 1;
    }
    return status;
}
