"""The highest request rate the hub sustains on 100,000 modules, and its latencies.

    python benchmarks/load.py [--server gunicorn|embedded|both] [--seconds 60]
                              [--rate R] [--workers 4] [--modules 100000]

Seeds (or reuses) 100,000 modules the way benchmarks/registry_search.py does —
into its PostgreSQL database ``<DATABASE_URL's name>_registry_bench`` for
``--server gunicorn``, into an SQLite file in ``var/load-bench/embedded-<count>/``
for ``--server embedded`` (the embedded default) — then starts the real web server
on a free loopback port: gunicorn with the production command
(hubsite/processes.py, ``--workers`` processes of 4 threads; without the nginx
that production puts in front of it), or the embedded waitress server as
``manage.py runhub`` starts it. It then sends a mix of reads as browsers,
API clients and huggingface_hub send them: list pages with sorts and filters,
searches (a bare ``q=lora``, which matches nine modules in ten, on its own
line), module pages, /api/v1/modules/, /api/models?search=…&limit=… (what
``HfApi.list_models`` asks) and /api/models/<repo> (``model_info``).

The load is open-loop: requests are due at a fixed rate whether or not the
earlier ones were answered, and each one's latency runs from when it was due,
so time spent waiting for a free connection counts (a closed loop, where each
client waits for its answer before asking again, slows down with the server
and hides its queueing). A rate is *sustained* when every request got a 2xx
answer within ``--timeout``, the answers kept pace (at least 95% of the rate)
and the p99 stayed under ``--max-p99``. Every run gets a server of its own,
warmed up (its processes open their database connections and fill their
caches), so that none inherits the queue of a rate the last one could not keep
up with. Without ``--rate`` the script probes rising rates for
``--probe-seconds`` each, narrows down between the last rate sustained and the
first one not, then runs the best one for ``--seconds`` (and, should that
fail, up to two lower ones) and prints requests, req/s, p50, p95, p99 and
errors per kind of request.

Bounded: loopback only, at most ``--connections`` connections, at most
MAX_PROBES probes, and every run stops by itself. The client shares the
machine with the server: on a small machine its own CPU use lowers the rate
found, and other work on the machine makes the figures noisy (the load
average is printed beside them).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import registry_search  # noqa: E402

from hubsite.processes import production_web_command, web_command  # noqa: E402
from tests.servers import free_port, wait_for_http  # noqa: E402

STATE_DIR = ROOT / "var" / "load-bench"
MAX_PROBES = 8
WARM_CONNECTIONS = 4
MAX_CONNECTIONS = 256
SAMPLE_MODULES = 5000
COMMON_WORD = "lora"  # a tag on nine modules in ten

# Share of each kind of request in the mix.
MIX = {
    "browse": 0.22,
    "search": 0.20,
    f"search q={COMMON_WORD}": 0.06,
    "module page": 0.20,
    "api/v1/modules": 0.10,
    "api/models list": 0.12,
    "api/models info": 0.10,
}


# --- Seeding (in a child process: one Django set-up per database) --------------


def prepare(kind: str, modules: int, reseed: bool) -> None:
    """Migrate and seed the database of ``kind``; write targets.json for the load.

    Runs with server_env's environment: DATABASE_URL names the bench database
    (gunicorn) or is unset, for SQLite in HUB_VAR_DIR (embedded).
    """
    state = Path(os.environ["HUB_VAR_DIR"])
    if kind == "gunicorn":
        url = os.environ["DATABASE_URL"]
        registry_search.ensure_database(url, fresh=reseed)
        registry_search.setup_django(url)
    else:
        if reseed:
            for path in state.glob("hub.sqlite3*"):
                path.unlink()
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    from django.core.management import call_command
    from django.db import connection

    from modules.models import Module

    rng = random.Random(20231)
    if reseed or Module.objects.count() != modules:
        print(f"Seeding {modules:,} modules ({connection.vendor}) …", file=sys.stderr)
        registry_search.seed(modules, rng)
    call_command("collectstatic", interactive=False, verbosity=0)
    (state / "targets.json").write_text(json.dumps(targets(rng)))


def targets(rng: random.Random) -> dict:
    """Names the load asks for: public modules, owners, tags, base models."""
    from modules.models import BaseModel, Module
    from modules.selectors import popular_tags

    public = list(
        Module.objects.filter(visibility=Module.Visibility.PUBLIC).values_list(
            "owner__username", "name"
        )
    )
    return {
        "count": Module.objects.count(),
        "modules": [
            f"{owner}/{name}"
            for owner, name in rng.sample(public, min(SAMPLE_MODULES, len(public)))
        ],
        "owners": sorted({owner for owner, _ in rng.sample(public, min(300, len(public)))}),
        "tags": [tag.slug for tag in popular_tags(60)],
        "base_models": list(BaseModel.objects.values_list("identifier", flat=True)),
    }


def state_dir(kind: str, modules: int) -> Path:
    """The run's HUB_VAR_DIR: secret key, static files, logs; SQLite's database file."""
    return STATE_DIR / ("gunicorn" if kind == "gunicorn" else f"embedded-{modules}")


def server_env(kind: str, modules: int) -> dict:
    state = state_dir(kind, modules)
    state.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HUB_VAR_DIR": str(state), "DJANGO_SETTINGS_MODULE": "hubsite.settings"}
    for name in ("STATIC_ROOT", "MEDIA_ROOT", "HUB_UPLOAD_TEMP_DIR", "HUB_BROKER_DIR"):
        env.pop(name, None)
    env["MODEL_CACHE_DIR"] = str(state / "models")
    if kind == "gunicorn":
        env["DATABASE_URL"] = registry_search.bench_database_url(
            os.environ.get("DATABASE_URL", registry_search.DEFAULT_SERVER)
        )
    else:
        env.pop("DATABASE_URL", None)  # the embedded default: SQLite in HUB_VAR_DIR
    return env


def run_prepare(kind: str, modules: int, reseed: bool) -> dict:
    command = [sys.executable, __file__, "--prepare", kind, "--modules", str(modules)]
    env = server_env(kind, modules)
    subprocess.run(command + (["--reseed"] if reseed else []), env=env, check=True)
    return json.loads((state_dir(kind, modules) / "targets.json").read_text())


# --- The server -------------------------------------------------------------------


class Server:
    """The web server of ``kind`` on a free loopback port, logging to a file."""

    def __init__(self, kind: str, modules: int, workers: int, threads: int | None):
        self.kind = kind
        self.port = free_port()
        bind = f"127.0.0.1:{self.port}"
        if kind == "gunicorn":
            command = [sys.executable, "-m", *production_web_command(bind, workers)]
        else:
            command = web_command(bind, threads)
        env = server_env(kind, modules)
        self.log_path = Path(env["HUB_VAR_DIR"]) / "server.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    @staticmethod
    def describe(kind: str, workers: int, threads: int | None) -> str:
        if kind == "gunicorn":
            return f"gunicorn, {workers} workers × 4 threads, PostgreSQL"
        threads = threads or int(os.environ.get("HUB_WEB_THREADS", 8))
        return f"embedded waitress, {threads} threads, SQLite"

    def __enter__(self) -> Server:
        try:
            wait_for_http(f"http://127.0.0.1:{self.port}/healthz", timeout=60)
        except TimeoutError:
            self.__exit__()
            sys.exit(f"the server did not start; see {self.log_path}")
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# --- The requests -------------------------------------------------------------------


def request_mix(count: int, targets: dict, rng: random.Random) -> list[tuple[str, str]]:
    """``count`` (kind, path) pairs in MIX's proportions."""
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    return [(kind, path_for(kind, targets, rng)) for kind in kinds]


def path_for(kind: str, targets: dict, rng: random.Random) -> str:
    if kind == "browse":
        return "/modules/?" + urlencode(list_filters(targets, rng))
    if kind == "search":
        params = [("q", search_words(rng)), *list_filters(targets, rng, 0.3)]
        return "/modules/?" + urlencode(params)
    if kind.startswith("search q="):
        return "/modules/?" + urlencode({"q": COMMON_WORD})
    if kind == "module page":
        return f"/{rng.choice(targets['modules'])}/"
    if kind == "api/v1/modules":
        params = [(k, v) for k, v in list_filters(targets, rng, 0.3) if k != "page"]
        if rng.random() < 0.7:
            params.append(("search", search_words(rng)))
        return "/api/v1/modules/?" + urlencode(params)
    if kind == "api/models list":
        # HfApi.list_models(search=…, author=…, filter=…, sort=…, limit=…)
        params = {"limit": rng.choice([10, 20, 50, 100])}
        roll = rng.random()
        if roll < 0.6:
            params["search"] = rng.choice(registry_search.TASKS + registry_search.DATASETS)
        elif roll < 0.75:
            params["search"] = rng.choice(targets["modules"]).split("/")[1].rsplit("-", 2)[0]
        elif roll < 0.9:
            params["author"] = rng.choice(targets["owners"])
        else:
            params["filter"] = rng.choice(targets["tags"][:30])
        if rng.random() < 0.3:
            params["sort"] = rng.choice(["downloads", "likes", "lastModified", "createdAt"])
        return "/api/models?" + urlencode(params)
    if kind == "api/models info":
        return f"/api/models/{rng.choice(targets['modules'])}"
    raise ValueError(kind)


def search_words(rng: random.Random) -> str:
    """Words people search for: a task or a domain, two of them, or a typo."""
    tasks, domains = registry_search.TASKS, registry_search.DOMAINS
    roll = rng.random()
    if roll < 0.55:
        return rng.choice(tasks + domains + registry_search.DATASETS).replace("-", " ")
    if roll < 0.8:
        return f"{rng.choice(tasks)} {rng.choice(domains)}"
    word = rng.choice(tasks)
    cut = rng.randrange(1, len(word) - 1)
    return word[:cut] + word[cut + 1 :]


def list_filters(targets: dict, rng: random.Random, chance: float = 1.0) -> list[tuple]:
    """A sort, filters and a page, as people click them on the list page."""
    params = []
    if rng.random() >= chance:
        return params
    if rng.random() < 0.6:
        params.append(("sort", rng.choice(["downloads", "likes", "newest", "updated"])))
    if rng.random() < 0.3:
        params.append(("base_model", rng.choice(targets["base_models"])))
    if rng.random() < 0.15:
        params.append(("task_type", rng.choice(["CAUSAL_LM", "SEQ_2_SEQ_LM"])))
    if rng.random() < 0.2:
        params.append(("rank", rng.choice([4, 8, 16, 32, 64])))
    if rng.random() < 0.2:
        params.append(("tag", rng.choice(targets["tags"])))
    if rng.random() < 0.1:
        params.append(("license", rng.choice(["apache-2.0", "mit", "cc-by-4.0"])))
    if rng.random() < 0.15:
        params.append(("page", rng.randint(2, 5)))
    return params


# --- Open-loop load -----------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    latency: float  # seconds from when the request was due to its last byte
    error: str = ""
    path: str = ""
    waited: float = 0.0  # of the latency, seconds before a connection was free to send it


class Client:
    """Threads on kept-alive connections; each takes the next due request."""

    def __init__(self, port: int, connections: int, timeout: float):
        self.port, self.connections, self.timeout = port, connections, timeout

    def run(self, rate: float, seconds: float, requests: list[tuple[str, str]]) -> list[Outcome]:
        due = queue.Queue()
        start = time.monotonic() + 0.2
        for index, (kind, path) in enumerate(requests):
            due.put((start + index / rate, kind, path))
        outcomes: list[Outcome] = []
        lock = threading.Lock()
        threads = [
            threading.Thread(target=self._work, args=(due, outcomes, lock), daemon=True)
            for _ in range(self.connections)
        ]
        for thread in threads:
            thread.start()
        # Every request is due within ``seconds``; each ends within the timeout.
        hard_stop = start + seconds + self.timeout + 5
        for thread in threads:
            thread.join(timeout=max(0.0, hard_stop - time.monotonic()))
        with lock:
            done = list(outcomes)
        while not due.empty():  # only after a hard stop
            _, kind, _ = due.get_nowait()
            done.append(Outcome(kind, math.inf, "never sent"))
        unanswered = len(requests) - len(done)  # still in flight at the hard stop
        done += [Outcome("in flight", math.inf, "no answer when the run ended")] * unanswered
        return done

    def _work(self, due: queue.Queue, outcomes: list, lock: threading.Lock) -> None:
        connection = None
        while True:
            try:
                at, kind, path = due.get_nowait()
            except queue.Empty:
                break
            wait = at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif -wait > self.timeout:
                # Waited longer than the timeout for a free connection.
                with lock:
                    outcomes.append(Outcome(kind, -wait, "no free connection in time", path))
                continue
            waited = max(0.0, time.monotonic() - at)
            error, connection = self.get(connection, path)
            latency = time.monotonic() - at
            if not error and latency > self.timeout:
                error = "slower than the timeout"
            with lock:
                outcomes.append(Outcome(kind, latency, error, path, waited))
        if connection is not None:
            connection.close()

    def get(self, connection, path: str):
        """GET ``path``: an error ("" if none) and the connection to use next.

        A kept-alive connection the server closed while it was idle is opened
        again once, as HTTP clients do: that is not the server failing.
        """
        for attempt in (1, 2):
            reused = connection is not None
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, self.timeout)
            try:
                connection.request("GET", path, headers={"Accept-Encoding": "identity"})
                response = connection.getresponse()
                response.read()
            except (ConnectionResetError, BrokenPipeError) as exc:
                connection.close()
                connection = None
                if reused and attempt == 1:
                    continue
                return f"{type(exc).__name__}: {exc} {path}", None
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                return f"{type(exc).__name__}: {exc} {path}", None
            if response.will_close:
                connection.close()
                connection = None
            error = "" if 200 <= response.status < 300 else f"HTTP {response.status} {path}"
            return error, connection
        raise AssertionError("unreachable")


# --- Figures ------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Verdict:
    rate: float
    seconds: float
    outcomes: list[Outcome]
    max_p99: float
    # Per path, the milliseconds gunicorn's access log says the worker took.
    server_ms: dict[str, list[int]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]

    @property
    def answered_rate(self) -> float:
        answered = [o for o in self.outcomes if not o.error]
        return len(answered) / self.seconds

    @property
    def p99(self) -> float:
        return percentile([o.latency for o in self.outcomes], 99)

    @property
    def sustained(self) -> bool:
        return (
            not self.errors and self.answered_rate >= 0.95 * self.rate and self.p99 <= self.max_p99
        )

    def line(self) -> str:
        state = "sustained" if self.sustained else "NOT sustained"
        return (
            f"  {self.rate:7.1f} req/s for {self.seconds:.0f} s: {state}: "
            f"{len(self.outcomes)} requests, {len(self.errors)} errors, "
            f"p99 {self.p99 * 1000:.0f} ms"
        )


def table(verdict: Verdict, title: str) -> str:
    by_kind = defaultdict(list)
    for outcome in verdict.outcomes:
        by_kind[outcome.kind].append(outcome)
    rows = [(kind, by_kind[kind]) for kind in MIX if by_kind[kind]]
    rows.append(("all", verdict.outcomes))
    lines = [
        title,
        f"  {'kind':22} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'errors':>6}",
    ]
    for kind, outcomes in rows:
        latencies = [o.latency * 1000 for o in outcomes]
        lines.append(
            f"  {kind:22} {len(outcomes):8} {len(outcomes) / verdict.seconds:7.1f} "
            f"{percentile(latencies, 50):8.1f} {percentile(latencies, 95):8.1f} "
            f"{percentile(latencies, 99):8.1f} {sum(1 for o in outcomes if o.error):6}"
        )
    for error in sorted({o.error for o in verdict.errors})[:5]:
        lines.append(f"  error: {error}")
    return "\n".join(lines)


def slowest(verdict: Verdict, count: int) -> str:
    """The slowest requests with their paths, to tell a slow query from a queue."""
    answered = [o for o in verdict.outcomes if o.path and math.isfinite(o.latency)]
    ranked = sorted(answered, key=lambda o: o.latency, reverse=True)[:count]
    lines = [
        f"  slowest {len(ranked)} requests: ms in all, of which waiting for a free "
        "connection, and the worker's own ms for that path (gunicorn's log, every time asked)"
    ]
    for outcome in ranked:
        worker = ",".join(map(str, verdict.server_ms.get(outcome.path, []))) or "-"
        lines.append(
            f"  {outcome.latency * 1000:7.1f} {outcome.waited * 1000:6.1f} {worker:>10}  "
            f"{outcome.kind:18} {outcome.path}"
        )
    return "\n".join(lines)


def load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


# --- The search for the highest rate -------------------------------------------------


def measure(kind: str, targets: dict, rate: float, seconds: float, args, rng) -> Verdict:
    """One run at ``rate`` on a server started for it: no run inherits another's queue.

    A server keeps working on requests its clients gave up on, so after a
    rate it could not keep up with, its queue would slow the next run down.
    """
    with Server(kind, args.modules, args.workers, args.threads) as server:
        client = Client(server.port, args.connections, args.timeout)
        warm_up(client, targets, args.warm_requests, rng)
        log_start = server.log_path.stat().st_size
        requests = request_mix(max(1, round(rate * seconds)), targets, rng)
        outcomes = client.run(rate, seconds, requests)
        server_ms = worker_times(server.log_path, log_start)
    return Verdict(rate, seconds, outcomes, args.max_p99 / 1000, server_ms)


ACCESS_LINE = re.compile(r'"GET (?P<path>\S+) HTTP/[\d.]+" \d{3} .* (?P<ms>\d+)ms$')


def worker_times(log_path: Path, start: int) -> dict[str, list[int]]:
    """Per path, the worker's own milliseconds from gunicorn's access log (none for waitress)."""
    times = defaultdict(list)
    with log_path.open("rb") as log:
        log.seek(start)
        for raw in log:
            match = ACCESS_LINE.search(raw.decode("utf-8", "replace").rstrip())
            if match:
                times[match["path"]].append(int(match["ms"]))
    return dict(times)


def warm_up(client: Client, targets: dict, count: int, rng: random.Random) -> None:
    """``count`` requests on WARM_CONNECTIONS connections, each waiting for its answers.

    Every server process gets to open its database connections and fill its
    caches before the run; then the server is given time to finish them all.
    """
    requests = request_mix(count, targets, rng)

    def send(share: list) -> None:
        connection = None
        for _, path in share:
            _, connection = client.get(connection, path)
        if connection is not None:
            connection.close()

    threads = [
        threading.Thread(target=send, args=(requests[i::WARM_CONNECTIONS],))
        for i in range(WARM_CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    idle(client)


def idle(client: Client, limit: float = 60) -> None:
    """Wait (at most ``limit`` seconds) until /healthz answers at once: nothing queued."""
    deadline = time.monotonic() + limit
    connection = None
    while time.monotonic() < deadline:
        started = time.monotonic()
        error, connection = client.get(connection, "/healthz")
        if not error and time.monotonic() - started < 0.2:
            break
        time.sleep(0.5)
    if connection is not None:
        connection.close()


def highest_rate(kind: str, targets: dict, args, rng) -> tuple[float, Verdict]:
    """Rising probes until one is not sustained, then halving the gap a few times.

    Returns the highest rate sustained (0 if none) and the lowest rate's verdict.
    """
    good, bad, rate = 0.0, math.inf, args.start_rate
    lowest = None
    for _ in range(MAX_PROBES):
        verdict = measure(kind, targets, rate, args.probe_seconds, args, rng)
        print(verdict.line(), flush=True)
        if lowest is None or rate < lowest.rate:
            lowest = verdict
        if verdict.sustained:
            good = rate
        else:
            bad = rate
        if bad / max(good, 1e-9) <= 1.1:
            break
        rate = good * 2 if bad == math.inf else (good + bad) / 2 if good else bad / 2
    return good, lowest


def run_server(kind: str, args, rng: random.Random) -> None:
    targets = run_prepare(kind, args.modules, args.reseed)
    name = Server.describe(kind, args.workers, args.threads)
    print(f"\n{name}: {targets['count']:,} modules, {load_average()}")
    rate = args.rate
    if not rate:
        rate, lowest = highest_rate(kind, targets, args, rng)
        if not rate:
            title = f"{name}: no rate sustained; the lowest probed"
            print("\n" + table(lowest, f"{title}, {lowest.rate:.2f} req/s, {load_average()}"))
            return
    for _ in range(3):
        verdict = measure(kind, targets, rate, args.seconds, args, rng)
        print(verdict.line(), flush=True)
        if verdict.sustained or args.rate:
            break
        rate *= 0.85
    state = "sustained" if verdict.sustained else "NOT sustained"
    title = (
        f"{name}, {targets['count']:,} modules: {verdict.rate:.1f} req/s "
        f"for {args.seconds:.0f} s, {state}; {load_average()}"
    )
    print("\n" + table(verdict, title))
    if args.slowest:
        print(slowest(verdict, args.slowest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["gunicorn", "embedded", "both"], default="both")
    parser.add_argument("--modules", type=int, default=100_000)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--seconds", type=float, default=60, help="the final run")
    parser.add_argument("--probe-seconds", type=float, default=10)
    parser.add_argument("--warm-requests", type=int, default=200)
    parser.add_argument("--rate", type=float, help="run this rate only (no search)")
    parser.add_argument("--start-rate", type=float, default=10)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn processes")
    parser.add_argument("--threads", type=int, help="embedded server threads")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=5, help="seconds an answer may take")
    parser.add_argument("--max-p99", type=float, default=1000, help="ms, for a rate to count")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--slowest", type=int, default=10, help="list this many slowest requests")
    parser.add_argument("--prepare", choices=["gunicorn", "embedded"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.modules, args.reseed)
        return 0
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections must be 1 to {MAX_CONNECTIONS}")
    kinds = ["gunicorn", "embedded"] if args.server == "both" else [args.server]
    rng = random.Random(args.seed)
    for kind in kinds:
        run_server(kind, args, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
