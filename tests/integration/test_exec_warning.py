"""exec of a program libmeshtls cannot be interposed into (here a statically linked one, which
no preload ever reaches, and one using io_uring, whose rings no hook sees) logs a warning naming
it: its connections would escape the mesh."""

import os
import subprocess

from harness import PYTHON, Mesh, check, main


def test():
    with Mesh("exec-warning") as mesh:
        mesh.start_agent()
        source = os.path.join(mesh.dir, "static.c")
        program = os.path.join(mesh.dir, "static-program")
        with open(source, "w") as f:
            f.write("int main(void) { return 0; }\n")
        subprocess.run(["cc", "-static", "-o", program, source], check=True)
        dynamic = mesh.meshed("exec-dynamic", [PYTHON, "-c", "import os; os.execv('/bin/true', ['true'])"])
        check(dynamic.wait(30) == 0, f"exec of /bin/true failed:\n{dynamic.stderr()}")
        check("exec of" not in dynamic.stderr(),
              f"a warning for an interposable program:\n{dynamic.stderr()}")
        parent = mesh.meshed("exec-static", [PYTHON, "-c",
                                             f"import os; os.execv({program!r}, ['static-program'])"])
        check(parent.wait(30) == 0, f"exec of the static program failed:\n{parent.stderr()}")
        expected = f"warn: exec of {program}: {program} cannot be interposed: it is statically linked"
        check(expected in parent.stderr(), f"no warning naming the program:\n{parent.stderr()}")
        # A program using io_uring: the preload loads, but what the kernel does for its rings
        # no hook sees.
        source = os.path.join(mesh.dir, "ring.c")
        ring = os.path.join(mesh.dir, "ring-program")
        with open(source, "w") as f:
            f.write("#include <liburing.h>\n"
                    "int main(void) { struct io_uring r;\n"
                    "  if (io_uring_queue_init(4, &r, 0) == 0) io_uring_queue_exit(&r);\n"
                    "  return 0; }\n")
        subprocess.run(["cc", "-o", ring, source, "-luring"], check=True)
        parent = mesh.meshed("exec-ring", [PYTHON, "-c",
                                           f"import os; os.execv({ring!r}, ['ring-program'])"])
        check(parent.wait(30) == 0, f"exec of the io_uring program failed:\n{parent.stderr()}")
        expected = f"warn: exec of {ring}: {ring} cannot be interposed: it imports liburing's"
        check(expected in parent.stderr(), f"no warning naming io_uring:\n{parent.stderr()}")
        print("exec of a static program and of an io_uring program warned; exec of a dynamic "
              "one did not")


if __name__ == "__main__":
    main(test)
