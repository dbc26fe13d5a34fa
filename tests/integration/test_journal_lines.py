"""Run as systemd services, the agent and a meshed program write lines the journal reads right.

systemd gives a service's stderr to the journal and names that stream in JOURNAL_STREAM
("DEVICE:INODE"); the journal stamps each line with the unit's identifier and pid and reads a
"<N>" syslog priority at its start. Without systemd here, the test gives each program a stderr
file and sets JOURNAL_STREAM to that file's device and inode, as systemd would for its stream:
the lines then carry "<6>info: " (or <4>, <3>) and no "name[pid]: " of their own, which the
journal would print a second time. A program whose stderr is not that stream keeps its prefix."""

import os

from harness import (AGENT, Mesh, base_env, check, free_port, http_client, main, random_token,
                     wait_agent_ready)


def journal_env(mesh, name):
    """base_env() with JOURNAL_STREAM naming the file that Process will open as name's stderr
    (opened for writing it keeps its inode)."""
    path = os.path.join(mesh.dir, f"{name}.err")
    open(path, "wb").close()
    status = os.stat(path)
    return dict(base_env(), JOURNAL_STREAM=f"{status.st_dev}:{status.st_ino}")


def check_journal_lines(text, name):
    lines = [line for line in text.splitlines() if line]
    check(lines, f"{name} wrote nothing")
    ours = [line for line in lines if line[:3] in ("<3>", "<4>", "<6>", "<7>")]
    check(ours, f"{name}: no line with a syslog priority:\n{text[-2000:]}")
    doubled = [line for line in lines if f"{name}[" in line or "meshtls[" in line]
    check(not doubled, f"{name}: lines still carry their own tag and pid:\n" + "\n".join(doubled))
    print(f"{name}, stderr as the journal stream: {ours[-1]}")


def test():
    with Mesh("journal", log_level="info") as mesh:
        sock = os.path.join(mesh.dir, "agent.sock")
        agent = mesh.spawn("meshtls-agent",
                           [AGENT, "--socket", sock, "--state-dir",
                            os.path.join(mesh.dir, "state"), "--metrics-address", "off"],
                           env=journal_env(mesh, "meshtls-agent"))
        wait_agent_ready(agent, sock)
        mesh.agents["agent"] = sock
        mesh.write_config("agent", sock)
        check_journal_lines(agent.stderr(), "meshtls-agent")
        check("<6>info: serving " in agent.stderr(), f"agent:\n{agent.stderr()[-2000:]}")

        root = os.path.join(mesh.dir, "www")
        os.mkdir(root)
        token = random_token()
        with open(os.path.join(root, "index.txt"), "w") as f:
            f.write(token)
        port = free_port()
        mesh.http_server("server", port, root)
        client = mesh.meshed("client", http_client(f"http://127.0.0.1:{port}/index.txt"),
                             env=journal_env(mesh, "client"))
        check(client.wait(30) == 0 and client.stdout().decode() == token,
              f"client failed:\n{client.stderr()[-2000:]}")
        check_journal_lines(client.stderr(), "client")
        check("<6>info: mtls outbound to 127.0.0.1:" in client.stderr(),
              f"client:\n{client.stderr()[-2000:]}")
        # The server's stderr is a file JOURNAL_STREAM does not name: its own prefix stays.
        server = next(p for p in mesh.processes if p.name == "server")
        check(f"meshtls[{server.popen.pid}]: info: mtls inbound" in server.stderr(),
              f"server:\n{server.stderr()[-2000:]}")


if __name__ == "__main__":
    main(test)
