"""An unmodified redis-server (single-threaded epoll event loop, read/write) serves an unmodified
redis-benchmark and redis-cli over mTLS, all under `meshtls run`: redis-benchmark runs SET and GET
with ten concurrent connections and reports a request rate for each with no error, the server's
own counters confirm every command arrived and every GET hit, and a random value written and read
back with redis-cli through a recording relay comes back equal while the wire carries only
TLS 1.3 records."""

import re

from harness import (Mesh, Relay, assert_relay_tls13, check, free_port, main, random_token,
                     run_meshed, start_meshed_server)

REQUESTS = 2000


def redis_info(mesh, port, name):
    status, output, errors = run_meshed(
        mesh, name, ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "INFO", "stats"], 30)
    check(status == 0 and "total_commands_processed" in output,
          f"redis-cli INFO failed ({status}):\n{output}\n{errors}")
    return {key: int(value) for key, value in re.findall(r"^(\w+):(\d+)\r?$", output, re.M)}


def test():
    with Mesh("redis") as mesh:
        mesh.start_agent()
        port = free_port()
        start_meshed_server(mesh, "redis-server",
                            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", mesh.dir,
                             "--protected-mode", "yes"], port)

        status, output, errors = run_meshed(
            mesh, "redis-benchmark",
            ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "set,get",
             "-n", str(REQUESTS), "-c", "10", "-q"], 60)
        # -q prints progress lines ending in a carriage return, then one line per test.
        lines = [line.strip() for line in output.replace("\r", "\n").splitlines()]
        rates = dict(re.findall(r"^(SET|GET): ([\d.]+) requests per second", "\n".join(lines),
                                re.M))
        problems = [line for line in lines + errors.splitlines()
                    if re.search(r"error|ERR|refused|reset", line, re.I)]
        check(status == 0, f"redis-benchmark exited {status}:\n{output}\n{errors}")
        check(set(rates) == {"SET", "GET"} and all(float(r) > 0 for r in rates.values()),
              f"redis-benchmark reported no rate for SET and GET:\n{output}\n{errors}")
        check(not problems, f"redis-benchmark reported errors: {problems[:10]}")

        stats = redis_info(mesh, port, "redis-cli-info")
        check(stats.get("total_commands_processed", 0) >= 2 * REQUESTS,
              f"the server processed {stats.get('total_commands_processed')} commands, "
              f"expected at least {2 * REQUESTS}")
        check(stats.get("keyspace_hits", 0) >= REQUESTS and stats.get("keyspace_misses") == 0,
              f"GETs after the SETs should all hit: hits {stats.get('keyspace_hits')}, "
              f"misses {stats.get('keyspace_misses')}")

        # redis-cli through a recording relay: the value round-trips, and never in clear.
        relay = Relay(port)
        key, value = f"meshtls:{random_token(8)}", random_token(64)
        status, output, errors = run_meshed(
            mesh, "redis-cli-set",
            ["redis-cli", "-h", "127.0.0.1", "-p", str(relay.port), "SET", key, value], 30)
        check(status == 0 and output.strip() == "OK", f"SET failed ({status}): {output}{errors}")
        status, output, errors = run_meshed(
            mesh, "redis-cli-get",
            ["redis-cli", "-h", "127.0.0.1", "-p", str(relay.port), "GET", key], 30)
        check(status == 0 and output.strip() == value,
              f"GET returned {output.strip()!r} ({status}), expected {value!r}\n{errors}")
        assert_relay_tls13(relay, [value.encode(), key.encode()], expected_connections=2)
        print(f"redis-benchmark SET {rates['SET']} rps, GET {rates['GET']} rps, no errors; "
              f"server: {stats['total_commands_processed']} commands, "
              f"{stats['keyspace_hits']} hits; redis-cli SET/GET equal, TLS 1.3 on the wire")


if __name__ == "__main__":
    main(test)
