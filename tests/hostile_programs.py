"""Hostile programs written against the sandbox's own code (`tests/test_sandbox.py` runs each one):
forged verdicts, lying return values, escapes through files, descriptors, processes and the network,
resource floods. Data only: a program is a string.
"""

# Each program's `add` is wrong (or absent) unless its attack works; {out} is a host directory,
# {mark} a token to recognise what it started.
HOSTILE = {
    "forged verdict on every descriptor": """
import os, sys
sys.path.insert(0, "/t2sandbox")  # the harness's own codec: a verdict frame exactly as the judge writes it
import inside
for fd in range(0, 256):
    try: inside.send(fd, ("passed", ""))
    except OSError: pass
os._exit(0)
""",
    "forged verdict then exit at import": """
import sys, atexit
atexit.register(lambda: print('{"status": "passed"}'))
print('{"status": "passed"}'); sys.exit(0)
""",
    "always-equal object": """
class Eq:
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    def __bool__(self): return True
def add(a, b): return Eq()
""",
    "lying int and str subclasses": """
class I(int):
    def __eq__(self, o): return True
    __hash__ = int.__hash__
def add(a, b): return I(0)
""",
    "generator, class instance, module as return value": """
import os
def add(a, b): return (x for x in [a + b])
""",
    "monkeypatched builtins and harness": """
import builtins, sys, json
builtins.AssertionError = type("AssertionError", (BaseException,), {})
builtins.Exception = BaseException
m = sys.modules.get("__main__")
for name in ("send", "encode", "run_judge", "recv"):
    if m is not None and hasattr(m, name): setattr(m, name, lambda *a, **k: None)
json.dumps = lambda *a, **k: '{"status": "passed"}'
def add(a, b): return 0
""",
    "forged replies written ahead on the reply pipe": """
import os, sys
sys.path.insert(0, "/t2sandbox")
import inside
for fd in range(3, 64):
    try:
        for msg in [("loaded",), ("callable",)] + [("ok", 3), ("ok", 0), ("ok", 30)] * 3:
            inside.send(fd, msg)
    except OSError: pass
def add(a, b): return None
""",
    "reading the tests and the datasets": """
import os, gc, sys
found = [repr(dict(os.environ)), repr(sys.argv)]
for root in ("/work", "/tmp", "/dev/shm", "/t2sandbox", "/proc", "/etc", "/root", "/home", "/", "/usr/lib/python3"):
    n = 0
    for dirpath, dirs, files in os.walk(root):
        if dirpath.startswith("/dev"): continue  # a pty master would block the read
        for f in files:
            n += 1
            try: found.append(open(os.path.join(dirpath, f), errors="ignore").read(100000))
            except Exception: pass
        if n > 300: break
for fd in range(64):
    try:
        os.set_blocking(fd, False); found.append(os.read(fd, 100000).decode(errors="ignore"))
    except Exception: pass
    finally:
        try: os.set_blocking(fd, True)
        except Exception: pass
found += [o for o in gc.get_objects() if isinstance(o, str)]
blob = "\\n".join(found)
def add(a, b):
    import re
    m = re.search(r"secret-[0-9a-f]{32}", blob)
    return m.group(0) if m else 0
""",
    "writing outside: plain, dir_fd, /proc/self/fd, /tmp, /dev/shm": """
import os
targets = ["{out}/pwned", "/tmp/{mark}", "/dev/shm/{mark}", "/work/{mark}"]
for t in targets:
    try: open(t, "w").write("x")
    except Exception: pass
try:
    d = os.open("/", os.O_RDONLY)
    os.open("{out_rel}/pwned-dirfd", os.O_WRONLY | os.O_CREAT, dir_fd=d)
except Exception: pass
for fd in range(0, 64):
    try: os.open(f"/proc/self/fd/{fd}/../pwned-proc", os.O_WRONLY | os.O_CREAT)
    except Exception: pass
try: os.remove("{out}/keep.txt")
except Exception: pass
try:
    os.chmod("{out}", 0o700)
except Exception: pass
def add(a, b): return 0
""",
    "raw fork_exec, posix_spawn, fork, ctypes": """
import os, sys
try:
    import _posixsubprocess
    _posixsubprocess.fork_exec(["/bin/sh", "-c", "touch {out}/pwned-fe; sleep 30; echo {mark}"], [b"/bin/sh"], True, (), None, None,
        -1, -1, -1, -1, -1, -1, -1, -1, False, False, -1, None, None, None, -1, None, False)
except Exception as e: print("fork_exec", e)
try: os.posix_spawn("/bin/sh", ["/bin/sh", "-c", "touch {out}/pwned-ps; sleep 30; echo {mark}"], {})
except Exception as e: print("posix_spawn", e)
if os.fork() == 0:
    os.execv("/bin/sh", ["/bin/sh", "-c", "touch {out}/pwned-fork; sleep 30; echo {mark}"])
try:
    import ctypes
    libc = ctypes.CDLL(None)
    print("setuid", libc.setuid(0), "unshare", libc.unshare(0x10000000))
except Exception as e: print("ctypes", e)
def add(a, b): return 0
""",
    "new session, daemonised child": """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 1024)
        while True:
            try: open("{out}/pwned-daemon", "a").write("x")
            except Exception: pass
            time.sleep(0.05)
    os._exit(0)
def add(a, b): return 0
""",
    "signals to the parent and everyone": """
import os, signal
for pid in (os.getppid(), 1, -1, 0):
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
        try: os.kill(pid, sig)
        except Exception: pass
def add(a, b): return 0
""",
    "output flood": """
import os, sys
chunk = "x" * (1 << 20)
for _ in range(200):
    sys.stdout.write(chunk); sys.stderr.write(chunk)
def add(a, b): return 0
""",
    "grandchild holds the pipes open": """
import os, time
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
def add(a, b): return 0
""",
    "network": """
import socket
ok = False
for fam, addr in ((socket.AF_INET, ("127.0.0.1", {port})), (socket.AF_INET6, ("::1", {port}))):
    try:
        s = socket.socket(fam); s.settimeout(1); s.connect(addr); s.sendall(b"pwned"); ok = True
    except Exception as e: print(e)
def add(a, b): return a + b if ok else 0
""",
    "raising rlimits": """
import resource
ok = True
for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE, resource.RLIMIT_FSIZE):
    try: resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except Exception: ok = False
def add(a, b): return a + b if ok else 0
""",
    "fork bomb": """
import os
def add(a, b):
    while True:
        try: os.fork()
        except OSError: pass
""",
    "memory hog": """
def add(a, b):
    x = bytearray(8 * 1024 ** 3)
    return a + b
""",
    "infinite loop at import": "while True:\n    pass\n",
    "huge and deep return values": """
def add(a, b):
    if a == 1:
        return list(range(30_000_000))
    v = []
    for _ in range(100000): v = [v]
    return v
""",
    "tmpfs filler": """
import os
for d in ("/work", "/tmp", "/dev/shm"):
    for i in range(10000):
        try: open(f"{d}/f{i}", "wb").write(b"x" * (1 << 20))
        except OSError: break
def add(a, b): return 0
""",
    "new user namespace": """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
ok = libc.unshare(0x10000000) == 0
def add(a, b): return a + b if ok else 0
""",
    "ptrace of the sandbox's first process": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
stopped = libc.ptrace(16, 1, 0, 0) == 0  # PTRACE_ATTACH bubblewrap's reaper: the caller waits on it
def add(a, b): return a + b if stopped else 0
""",
    "vsock to the hypervisor": """
import socket
try:
    socket.socket(40, socket.SOCK_STREAM).close()  # AF_VSOCK: not covered by an empty network namespace
    made = True
except OSError:
    made = False
def add(a, b): return a + b if made else 0
""",
    "closes its channel": """
import os
for fd in range(3, 64):
    try: os.close(fd)
    except OSError: pass
def add(a, b): return a + b
""",
}

# What a judgement could leave on the host after its sandbox is gone (issue 41; tests/test_sandbox_round3.py):
# each holds 100-150 MB of kernel memory or shmem, more than the 64 MB the tests allow, and each is a
# correct program, so that the pass path is the one under test. {n} scales the dentry program.
LEFTOVERS = {
    "dentries of failed lookups through the host's binds": """
import os
tag = os.urandom(6).hex()  # names no earlier judgement looked up
for i in range({n}):
    try: os.stat(f"/usr/lib/{tag}{i}" + "x" * 230)  # a long name: the dentry's name is a separate allocation
    except OSError: pass
def add(a, b): return a + b
""",
    "unix-socket cycle holding memfds and tmpfs files": """
import array, os, socket
held = []
for i in range(8):  # 8 memfds of 15 MB (RLIMIT_FSIZE is 16 MB)
    fd = os.memfd_create("m")
    for k in range(15): os.pwrite(fd, b"x" * (1 << 20), k << 20)
    held.append(fd)
for path in ("/tmp/held", "/dev/shm/held"):  # a tmpfs outlives its unmount while a file of it is open
    fd = os.open(path, os.O_CREAT | os.O_RDWR)
    for k in range(15): os.pwrite(fd, b"y" * (1 << 20), k << 20)
    held.append(fd)
a, b = socket.socketpair()  # both ends and every file sent over one of them: reachable from no process
b.sendmsg([b"z"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [a.fileno(), b.fileno(), *held]))])
a.close(); b.close()
for fd in held: os.close(fd)
def add(a, b): return a + b
""",
    "tmpfs mounts filled": """
import os
for d in ("/work", "/tmp", "/dev/shm"):
    for i in range(64):
        try:
            with open(f"{d}/f{i}", "wb") as f: f.write(b"x" * (1 << 20))
        except OSError: break
def add(a, b): return a + b
""",
    "memfds kept to the end": """
import os
held = []
for i in range(10):
    fd = os.memfd_create("m")
    for k in range(15): os.pwrite(fd, b"x" * (1 << 20), k << 20)
    held.append(fd)
def add(a, b): return a + b
""",
    "inodes: empty files in a tmpfs": """
for i in range(120000):
    open(f"/tmp/{i}", "w").close()
def add(a, b): return a + b
""",
}
