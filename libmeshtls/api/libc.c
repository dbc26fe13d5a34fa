/*
 * libmeshtls.so's libc: the functions behind util/sys.c's calls on the application's behalf.
 *
 * libmeshtls.so interposes nothing, so in this object `read` is libc's read, bound by the
 * dynamic linker like any library's call: no name is looked up with dlsym, and meshtls_read on a
 * plain fd is exactly the read(2) the program would have made (a cancellation point, libc's
 * errno). Installed when the library is loaded, before any program or library that links it
 * runs its own constructors. Linked into libmeshtls.so and the meshtls program (whose supervisor
 * runs the engine), never into libmeshtls-preload.so: there these names are the hooks, and
 * preload/real.c installs the functions it resolved instead.
 */
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../util/sys.h"

/* glibc declares the address parameters of these as transparent unions (__SOCKADDR_ARG): a call
 * converts, a function pointer would not. */
static int libc_connect(int fd, const struct sockaddr *address, socklen_t length)
{
    return connect(fd, address, length);
}

static int libc_accept(int fd, struct sockaddr *address, socklen_t *length)
{
    return accept(fd, address, length);
}

static int libc_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags)
{
    return accept4(fd, address, length, flags);
}

static const struct mt_sys_libc libc_calls = {
    .connect = libc_connect,
    .accept = libc_accept,
    .accept4 = libc_accept4,
    .read = read,
    .write = write,
    .readv = readv,
    .writev = writev,
    .shutdown = shutdown,
    .close = close,
    .poll = poll,
    .epoll_ctl = epoll_ctl,
    .epoll_pwait = epoll_pwait,
};

__attribute__((constructor)) static void use_libc(void)
{
    mt_sys_use_libc(&libc_calls);
}
