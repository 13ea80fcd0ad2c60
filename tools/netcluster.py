"""A Dask cluster of real processes on one machine, each worker its own "node":

    hub netns:  the scheduler (and the clients), bridge br0 10.201.0.1/24
    node N:     a netns joined to the hub by a veth pair (eth0, 10.201.0.N+2), and a
                mount namespace in which that node's data directory is at the same
                path as every other node's (MOUNT), so "the same path on two nodes"
                means two copies, as it does on real storage nodes

Used by tests/kernel/test_dask.py and tools/bench_dask.py. Needs root and iproute2.
Everything it creates (namespaces, processes, the mount point) is removed by
close(), also after a failure half way through start().

    with Cluster([dir0, dir1, dir2]) as c:
        c.run([sys.executable, "client.py", c.scheduler])     # in the hub netns
        c.kill(1)                                              # SIGKILL node 1's worker
        c.traffic()                                            # bytes over each veth
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

SUBNET = "10.201.0"
PORT = 8786


def veth_bytes(ns):
    """Bytes received + sent on eth0 of netns ns (its veth to the hub)."""
    doc = json.loads(_ip("-n", ns, "-j", "-s", "link", "show", "eth0").stdout)[0]
    return doc["stats64"]["rx"]["bytes"] + doc["stats64"]["tx"]["bytes"]


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Cluster:
    def __init__(self, data_dirs, *, nthreads=1, preload=False, users=None,
                 python=sys.executable, tag=None):
        """users: {node index: uid} for workers that run unprivileged (gid = uid)."""
        self.data_dirs = [os.path.abspath(d) for d in data_dirs]
        self.nthreads, self.preload, self.users = nthreads, preload, dict(users or {})
        self.python = python
        tag = tag or str(os.getpid())
        self.hub = f"pybpf-dk{tag}-hub"
        self.nodes = [f"pybpf-dk{tag}-n{i}" for i in range(len(data_dirs))]
        self.names = [f"node{i}" for i in range(len(data_dirs))]
        self.scheduler = f"tcp://{SUBNET}.1:{PORT}"
        self.mount = None
        self.procs = {}            # "scheduler" or a node name -> Popen
        self.logs = {}

    # -- set-up -----------------------------------------------------------------------

    def start(self, timeout=90, expect=None):
        """Start everything and wait for expect workers (default: all of them)."""
        try:
            self._network()
            self.mount = tempfile.mkdtemp(prefix="pybpf-cluster-data-")
            self._spawn("scheduler", self.hub, [
                self.python, "-m", "distributed.cli.dask_scheduler", "--host",
                f"{SUBNET}.1", "--port", str(PORT), "--no-dashboard"])
            for i in range(len(self.nodes)):
                self.start_worker(i)
            self.wait_for_workers(len(self.nodes) if expect is None else expect, timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _network(self):
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for i, ns in enumerate(self.nodes):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", self.hub, "link", "add", f"v{i}", "type", "veth", "peer", "name",
                "eth0", "netns", ns)
            _ip("-n", self.hub, "link", "set", f"v{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{i + 2}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def worker_command(self, i):
        """The shell command that starts node i's worker inside its namespaces."""
        argv = [self.python, "-m", "distributed.cli.dask_worker", self.scheduler,
                "--name", self.names[i], "--host", f"{SUBNET}.{i + 2}", "--no-nanny",
                "--nthreads", str(self.nthreads), "--no-dashboard"]
        if self.preload:
            argv += ["--preload", "pybpf.dask.preload"]
        user = self.users.get(i)
        if user:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}",
                    "--clear-groups", "--inh-caps=-all", "--"] + argv
        quoted = " ".join(shlex.quote(a) for a in argv)
        return (f"mount --bind {shlex.quote(self.data_dirs[i])} {shlex.quote(self.mount)} && "
                f"exec {quoted}")

    def start_worker(self, i):
        self._spawn(self.names[i], self.nodes[i], ["sh", "-c", self.worker_command(i)])

    def _spawn(self, what, ns, argv):
        log = tempfile.TemporaryFile(mode="w+")
        self.logs[what] = log
        # ip netns exec enters the netns in a mount namespace of its own and then execs
        # the command (and sh execs the worker), so the Popen's pid is the process's.
        self.procs[what] = subprocess.Popen(["ip", "netns", "exec", ns, *argv],
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def wait_for_workers(self, n, timeout=90):
        code = ("import sys; from distributed import Client\n"
                f"with Client({self.scheduler!r}, timeout={timeout}) as c:\n"
                f"    c.wait_for_workers({n}, timeout={timeout})\n")
        r = self.run([self.python, "-c", code], timeout=timeout + 30, check=False)
        if r.returncode:
            raise RuntimeError(f"the cluster's workers did not start:\n{r.stderr[-2000:]}"
                               f"\n{self.log_text()}")

    # -- use ----------------------------------------------------------------------------

    def run(self, argv, timeout=300, check=True, **kw):
        """argv in the hub netns (where a client reaches every node)."""
        return subprocess.run(["ip", "netns", "exec", self.hub, *argv], timeout=timeout,
                              check=check, capture_output=True, text=True, **kw)

    def path(self, name):
        """The path a file of a node's data directory has on that node."""
        return os.path.join(self.mount, name)

    def kill(self, i):
        """SIGKILL node i's worker and wait for it."""
        p = self.procs[self.names[i]]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)

    def traffic(self):
        """{node name: bytes received + sent on its veth}."""
        return {name: veth_bytes(ns) for name, ns in zip(self.names, self.nodes)}

    def log(self, what):
        """What a process ("scheduler" or a node's name) has printed so far."""
        log = self.logs[what]
        log.seek(0)
        return log.read()

    def log_text(self, tail=3000):
        """The end of every process's output, for failure messages."""
        return "\n".join(f"--- {what} ---\n{self.log(what)[-tail:]}" for what in self.logs)

    # -- tear-down ------------------------------------------------------------------------

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs.values():
            p.wait(timeout=30)
        for ns in self.nodes + [self.hub]:
            _ip("netns", "delete", ns, check=False)
        if self.mount:
            shutil.rmtree(self.mount, ignore_errors=True)
        for log in self.logs.values():
            log.close()
        self.logs = {}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
