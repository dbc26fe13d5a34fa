"""`meshtls run` never starts a program it cannot protect, unless told to.

Real programs built here, each a server that first creates a marker file and then listens on
loopback and greets (or answers HTTP) in the clear:

  - a Go HTTP server (`go build` with Debian's golang-go: cgo, dynamically linked, still Go),
  - the same small C server linked statically (`cc -static`) and against musl (`musl-gcc`),
  - a glibc program that uses liburing (io_uring: the kernel does its I/O, no preload sees it).

The Go and the static server are meshed by `meshtls run` through the system-call supervisor:
started (marker file), listening, and a plaintext client gets no greeting. The musl server, where
no musl variant of the preload is installed beside the preload (a copy of meshtls and the glibc
preload alone), and the io_uring program are refused: exit 126, "meshtls: not starting PROGRAM:
<why>" and what to do on stderr, and the program never ran (no marker file, nothing listening).
With --allow-plaintext each of those runs: the warn line names it and says its connections are
NOT protected, and the bytes a client reads from it are the plaintext greeting, not a TLS record.

With --allow-io-uring the io_uring program runs with libmeshtls loaded (its other socket calls
are meshed) and a warn line says what is not protected.

A musl program with libmeshtls-preload-musl.so installed beside the preload is started with
LD_PRELOAD naming that variant alone (here a stand-in musl library built here that announces
itself), even when LD_PRELOAD already held a glibc library that would stop musl's loader.

The Go server is built once into the build directory (GOCACHE there too), and rebuilt only when
its source changes.
"""

import os
import shutil
import socket
import subprocess

from harness import (BUILD, MESHTLS, Mesh, base_env, check, free_port, main, port_listening,
                     port_open, wait_for)

GO_SERVER = r'''package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	if err := os.WriteFile(os.Args[2], []byte("started\n"), 0o644); err != nil {
		panic(err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from go")
	})
	fmt.Println(http.ListenAndServe("127.0.0.1:"+os.Args[1], nil))
}
'''

# argv: PORT MARKER. Creates MARKER, serves one connection with a greeting, exits.
C_SERVER = r'''#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    FILE *marker = fopen(argv[2], "w");
    if (marker == NULL || fclose(marker) != 0)
        return 3;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(listener, 4) != 0)
        return 4;
    int client = accept(listener, NULL, NULL);
    const char greeting[] = "hello in the clear\n";
    if (client < 0 || write(client, greeting, strlen(greeting)) != (ssize_t)strlen(greeting))
        return 5;
    close(client);
    return 0;
}
'''

# argv: MARKER. Creates MARKER, sets up a ring: a program whose I/O would go through io_uring.
# Says whether libmeshtls is loaded into it (its exported meshtls_connect).
URING_PROGRAM = r'''#define _GNU_SOURCE
#include <dlfcn.h>
#include <liburing.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    struct io_uring ring;
    FILE *marker = argc == 2 ? fopen(argv[1], "w") : NULL;
    if (marker == NULL || fclose(marker) != 0)
        return 3;
    if (io_uring_queue_init(4, &ring, 0) == 0)
        io_uring_queue_exit(&ring);
    printf("libmeshtls loaded: %s\n", dlsym(RTLD_DEFAULT, "meshtls_connect") ? "yes" : "no");
    return 0;
}
'''

# A stand-in for libmeshtls-preload-musl.so: says it was loaded, and what LD_PRELOAD held.
MUSL_STAND_IN = r'''#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void announce(void)
{
    const char *preload = getenv("LD_PRELOAD");
    fprintf(stderr, "musl variant loaded, LD_PRELOAD=%s\n", preload ? preload : "");
}
'''

# argv: MARKER. Creates MARKER.
C_MARKER = r'''#include <stdio.h>
int main(int argc, char **argv)
{
    FILE *marker = argc == 2 ? fopen(argv[1], "w") : NULL;
    return marker != NULL && fclose(marker) == 0 ? 0 : 3;
}
'''


def compile_c(directory, name, source, command, flags=(), libraries=()):
    """Builds name from source with command (cc, musl-gcc); fails the test with the compiler's
    message when it cannot."""
    path = os.path.join(directory, name + ".c")
    with open(path, "w") as f:
        f.write(source)
    output = os.path.join(directory, name)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    result = subprocess.run([command, *flags, "-o", output, path, *libraries],
                            capture_output=True, text=True, timeout=120, env=env)
    check(result.returncode == 0, f"{command} cannot build {name}:\n{result.stderr[-2000:]}")
    return output


def build_go_server():
    """The Go server, built once in the build directory and rebuilt when its source changes."""
    directory = os.path.join(os.path.abspath(BUILD), "run-refusals-go")
    os.makedirs(directory, exist_ok=True)
    source = os.path.join(directory, "main.go")
    binary = os.path.join(directory, "go-server")
    current = None
    if os.path.exists(source):
        with open(source) as f:
            current = f.read()
    if current != GO_SERVER or not os.path.exists(binary):
        with open(source, "w") as f:
            f.write(GO_SERVER)
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        # No module and no downloads: the standard library only, from Debian's golang-go.
        env.update(GOCACHE=os.path.join(directory, "cache"), GOPATH=os.path.join(directory, "path"),
                   GOPROXY="off", GO111MODULE="off", GOFLAGS="", HOME=directory)
        result = subprocess.run(["go", "build", "-o", binary, source], capture_output=True,
                                text=True, timeout=300, env=env, cwd=directory)
        check(result.returncode == 0, f"go build failed:\n{result.stderr[-2000:]}")
    return binary


def run_cli(arguments, env=None, timeout=30, meshtls=MESHTLS):
    result = subprocess.run([meshtls, "run", *arguments], capture_output=True, text=True,
                            timeout=timeout, env=env or base_env())
    return result.returncode, result.stdout, result.stderr


def without_musl_variant(mesh):
    """A copy of meshtls beside the glibc preload alone: no musl variant to pick."""
    directory = os.path.join(mesh.dir, "glibc-only")
    os.makedirs(directory)
    shutil.copy2(os.path.join(BUILD, "libmeshtls-preload.so"), directory)
    return shutil.copy2(MESHTLS, os.path.join(directory, "meshtls"))


def check_refused(config, name, argv, marker, port, reason, meshtls=MESHTLS):
    """Not started: 126, the reason and the flag on stderr, no marker, nothing on the port."""
    status, out, err = run_cli(["--config", config, "--", *argv], meshtls=meshtls)
    check(status == 126, f"{name}: meshtls run exited {status}, expected 126:\n{out}{err}")
    check(f"meshtls: not starting {argv[0]}: " in err and reason in err,
          f"{name}: the refusal does not say why ({reason!r}):\n{err}")
    check("--allow-plaintext" in err, f"{name}: the refusal does not say what can be done:\n{err}")
    check(not os.path.exists(marker), f"{name} was started although refused ({marker} exists)")
    if port is not None:
        check(not port_listening(port) and not port_open(port),
              f"{name} listens on {port} although refused")


def read_greeting(port, request=b""):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if request:
            s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk
            if request and b"hello from go" in data:
                return data


def check_supervised(mesh, config, name, argv, marker, port, request):
    """Started under the supervisor, listening, and a plaintext client gets no plaintext."""
    process = mesh.spawn(name, [MESHTLS, "run", "--config", config, "--", *argv])
    wait_for(lambda: port_listening(port) or process.popen.poll() is not None, 20,
             f"{name} to listen on {port}")
    check(os.path.exists(marker) and process.popen.poll() is None,
          f"{name} did not start under the supervisor:\n{process.stderr()}")
    check(f"supervisor: {argv[0]} runs as pid" in process.stderr(),
          f"{name}: not started under the supervisor:\n{process.stderr()}")
    try:
        data = read_greeting(port, request)
    except OSError:
        data = b""
    check(b"hello" not in data, f"{name} answered a plaintext client: {data[:200]!r}")
    process.stop()


def check_started_plaintext(mesh, config, name, argv, marker, port, expected, request=b"",
                            meshtls=MESHTLS):
    """--allow-plaintext: started, the warn line logged, and its bytes on the wire in clear."""
    process = mesh.spawn(name, [meshtls, "run", "--allow-plaintext", "--config", config, "--",
                                *argv])
    wait_for(lambda: os.path.exists(marker) or process.popen.poll() is not None, 20,
             f"{name} to start")
    check(os.path.exists(marker), f"{name} did not start with --allow-plaintext:\n"
                                  f"{process.stderr()}")
    warning = (f"warn: starting {argv[0]} with --allow-plaintext: its connections are NOT "
               f"protected: ")
    check(warning in process.stderr(), f"{name}: no warn line naming it:\n{process.stderr()}")
    if port is None:
        check(process.wait(20) == 0, f"{name} failed:\n{process.stderr()}")
        return
    # Watched in /proc, not by connecting: the C server serves one connection only.
    wait_for(lambda: port_listening(port) or process.popen.poll() is not None, 20,
             f"{name} to listen on {port}")
    data = read_greeting(port, request)
    check(expected in data and not data.startswith(b"\x16\x03"),
          f"{name}: expected the plaintext {expected!r} on the wire, read {data[:200]!r}")
    process.stop()


def check_io_uring_allowed(config, program, marker):
    """--allow-io-uring: started with libmeshtls loaded, and a warn line saying what is not
    protected."""
    status, out, err = run_cli(["--allow-io-uring", "--config", config, "--", program, marker])
    check(status == 0 and os.path.exists(marker) and "libmeshtls loaded: yes" in out,
          f"the io_uring program with --allow-io-uring: exit {status}, {out!r}:\n{err}")
    check(f"warn: starting {program} with --allow-io-uring: connections it drives through "
          f"io_uring are NOT protected, its other socket calls are meshed" in err,
          f"no warn line for --allow-io-uring:\n{err}")


def check_musl_variant(mesh, musl_marker_program):
    """With libmeshtls-preload-musl.so beside the preload, a musl program gets it, alone."""
    installed = os.path.join(mesh.dir, "installed")
    os.makedirs(installed)
    meshtls = shutil.copy2(MESHTLS, os.path.join(installed, "meshtls"))
    shutil.copy2(os.path.join(BUILD, "libmeshtls-preload.so"), installed)
    compile_c(mesh.dir, "libmeshtls-preload-musl.so", MUSL_STAND_IN, "musl-gcc",
              flags=("-shared", "-fPIC"))
    shutil.move(os.path.join(mesh.dir, "libmeshtls-preload-musl.so"), installed)
    variant = os.path.join(installed, "libmeshtls-preload-musl.so")
    marker = os.path.join(mesh.dir, "musl-variant.started")
    env = base_env()
    # A glibc library already preloaded (as a sanitizer runtime is) would stop musl's loader.
    env["LD_PRELOAD"] = ":".join(filter(None, [env.get("LD_PRELOAD"),
                                               os.path.join(installed, "libmeshtls-preload.so")]))
    result = subprocess.run([meshtls, "run", "--config", mesh.configs["agent"], "--",
                             musl_marker_program, marker], capture_output=True, text=True,
                            timeout=30, env=env)
    check(result.returncode == 0 and os.path.exists(marker),
          f"the musl program with the musl variant installed: exit {result.returncode}:\n"
          f"{result.stderr}")
    check(f"musl variant loaded, LD_PRELOAD={variant}\n" in result.stderr,
          f"the musl program did not get the variant alone in LD_PRELOAD:\n{result.stderr}")


def test():
    for tool in ("go", "musl-gcc", "cc"):
        check(shutil.which(tool) is not None,
              f"{tool} missing (packaging/install-deps.sh: golang-go, musl-tools, build-essential)")
    check(os.path.exists("/usr/include/liburing.h"),
          "liburing.h missing (packaging/install-deps.sh: liburing-dev)")
    go_server = build_go_server()
    with Mesh("run-refusals") as mesh:
        mesh.start_agent()
        config = mesh.configs["agent"]
        static = compile_c(mesh.dir, "static-server", C_SERVER, "cc", flags=("-static",))
        musl = compile_c(mesh.dir, "musl-server", C_SERVER, "musl-gcc")
        uring = compile_c(mesh.dir, "uring-program", URING_PROGRAM, "cc", libraries=("-luring",))
        musl_marker = compile_c(mesh.dir, "musl-marker", C_MARKER, "musl-gcc")
        for name, program, request in (
                ("go", go_server, b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
                ("static", static, b"")):
            marker = os.path.join(mesh.dir, f"{name}-supervised.started")
            port = free_port()
            check_supervised(mesh, config, f"{name}-supervised", [program, str(port), marker],
                             marker, port, request)
        glibc_only = without_musl_variant(mesh)
        cases = [
            ("musl", musl, True, "it is linked against musl", b"hello in the clear\n", b""),
            ("io_uring", uring, False, "imports liburing's io_uring_", None, b""),
        ]
        # `meshtls check` says beforehand what `meshtls run` does.
        result = subprocess.run([MESHTLS, "check", uring], capture_output=True, text=True,
                                timeout=30, env=base_env())
        check(result.returncode == 1 and "imports liburing's io_uring_" in result.stdout,
              f"meshtls check of the io_uring program: {result.returncode} {result.stdout!r}")
        for name, program, listens, reason, expected, request in cases:
            marker = os.path.join(mesh.dir, f"{name}.started")
            port = free_port() if listens else None
            argv = [program, str(port), marker] if listens else [program, marker]
            check_refused(config, name, argv, marker, port, reason, meshtls=glibc_only)
            check_started_plaintext(mesh, config, f"{name}-plaintext", argv, marker, port,
                                    expected, request, meshtls=glibc_only)
        check_io_uring_allowed(config, uring, os.path.join(mesh.dir, "io_uring-allowed.started"))
        check_musl_variant(mesh, musl_marker)
        print("meshtls run supervised a Go and a static server (no plaintext answered), "
              "refused a musl (no variant installed) and an io_uring program (126, not "
              "started); --allow-plaintext started each with a warning, bytes in clear; "
              "--allow-io-uring started the io_uring one meshed; a musl program got "
              "libmeshtls-preload-musl.so alone")


if __name__ == "__main__":
    main(test)
