"""Search, filter and sort of the registry on PostgreSQL with 100,000 modules.

    python benchmarks/registry_search.py [--modules 100000] [--queries 400] [--reseed]

Seeds a separate database (``<name of DATABASE_URL's database>_registry_bench``
on the same server; DATABASE_URL defaults to the local CI server) with modules
that look like real ones — PEFT configs, model cards of a few kilobytes, tags
with a long-tailed popularity, downloads and likes spread over orders of
magnitude, 3% private — then runs a few hundred mixed queries the way the
list page and the API run them (module_search, then the page's count and its
20 rows) and prints p50/p95/p99 beside a plain primary-key lookup, then per
kind of query (common words, one word, two words, a typo, each by relevance or
sorted; filters alone; a bare ``q=lora`` repeated; /api/models lists as
huggingface_hub asks for them): once with PostgreSQL's default
random_page_cost (4, meant for spinning disks) and once with the hub's own
connection setting (DATABASE_RANDOM_PAGE_COST, 1.1 unless set: data on SSDs or
in memory).

The seeded database is kept, so later runs skip the seeding; --reseed drops
it and starts over.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/hub"
PAGE_SIZE = 20
COMMON_WORD = "lora"  # a tag of nine modules in ten
BARE_REPEATS = 30


def words(text: str) -> list[str]:
    return text.split()


TASKS = words(
    "sentiment summarization translation question-answering classification reasoning "
    "arithmetic coding sql-generation paraphrase entailment toxicity ner chat dialogue "
    "instruction-following poetry storytelling grammar-correction keyword-extraction "
    "title-generation topic-classification emotion sarcasm math logic commonsense "
    "reading-comprehension fact-checking retrieval rewriting simplification"
)
DOMAINS = words(
    "news reviews movies medical legal finance science code tweets wikipedia emails "
    "recipes sports biology chemistry history law support tickets forum patents "
    "education games music travel"
)
DATASETS = words(
    "sst2 imdb boolq squad cnn-dailymail xsum gsm8k mnli qnli rte wnli cola mrpc qqp "
    "anli hellaswag piqa arc winogrande triviaqa nq hotpotqa samsum dolly alpaca"
)
LANGUAGES = words("english french german spanish italian japanese chinese hindi arabic")
ADJECTIVES = words(
    "small fast careful concise faithful robust multilingual domain-tuned distilled "
    "experimental stable cheap accurate verbose friendly formal"
)
LICENSES = (
    ["apache-2.0"] * 5 + ["mit"] * 4 + ["cc-by-4.0", "cc-by-nc-4.0", "openrail", "llama3", ""]
)
RANKS = [4] * 2 + [8] * 5 + [16] * 4 + [32] * 2 + [64]
BASE_MODELS = [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "CAUSAL_LM", 576, 30),
    ("HuggingFaceTB/SmolLM2-360M-Instruct", "CAUSAL_LM", 960, 32),
    ("google/flan-t5-large", "SEQ_2_SEQ_LM", 1024, 24),
    ("google/flan-t5-base", "SEQ_2_SEQ_LM", 768, 12),
    ("meta-llama/Llama-3.2-1B-Instruct", "CAUSAL_LM", 2048, 16),
]


GENERIC_TAGS = ["lora", "peft", "text-generation", "text2text-generation", "en", "multilingual"]


def tag_vocabulary() -> list[str]:
    return [*GENERIC_TAGS, *TASKS, *DOMAINS, *DATASETS, *LANGUAGES]


def bench_database_url(server_url: str) -> str:
    parts = urlsplit(server_url)
    name = parts.path.lstrip("/") or "hub"
    return urlunsplit(parts._replace(path=f"/{name}_registry_bench"))


def ensure_database(url: str, *, fresh: bool) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    name = parts.path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "hubsite.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --- Seeding -----------------------------------------------------------------------


def seed(count: int, rng: random.Random) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from modules.models import BaseModel, Module, Tag
    from modules.services import module_search_index_refresh

    started = time.perf_counter()
    Module.objects.all().delete()
    User = get_user_model()
    User.objects.filter(username__startswith="bench-").delete()
    owners = User.objects.bulk_create(
        [User(username=f"bench-{i:04d}", password="!") for i in range(2000)]
    )
    base_models = [
        BaseModel.objects.update_or_create(
            identifier=identifier,
            defaults={
                "family": "t5" if task == "SEQ_2_SEQ_LM" else "llama",
                "task_type": task,
                "hidden_size": hidden,
                "num_layers": layers,
                "parameter_count": 10**8,
                "linear_shapes": {"q_proj": [[hidden, hidden]], "v_proj": [[hidden, hidden]]},
                "weights_location": identifier,
            },
        )[0]
        for identifier, task, hidden, layers in BASE_MODELS
    ]
    vocabulary = tag_vocabulary()
    Tag.objects.bulk_create([Tag(slug=s) for s in vocabulary], ignore_conflicts=True)
    tags = list(Tag.objects.filter(slug__in=vocabulary))
    # Popularity falls off like a power law: a few tags are everywhere.
    tag_weights = [1 / (rank + 1) ** 1.1 for rank in range(len(tags))]
    rng.shuffle(tags)
    now = timezone.now()
    through = Module.tags.through
    batch_size = 5000
    taken: set = set()
    for start in range(0, count, batch_size):
        modules, chosen_tags = [], []
        for index in range(start, min(start + batch_size, count)):
            module, module_tags = fake_module(
                index, rng, owners, base_models, tags, tag_weights, now, taken
            )
            modules.append(module)
            chosen_tags.append(module_tags)
        with transaction.atomic():
            Module.objects.bulk_create(modules)
            through.objects.bulk_create(
                [
                    through(module_id=module.pk, tag_id=tag.pk)
                    for module, module_tags in zip(modules, chosen_tags, strict=True)
                    for tag in module_tags
                ]
            )
        print(f"  seeded {min(start + batch_size, count):,} modules", file=sys.stderr)
    print("  computing search vectors …", file=sys.stderr)
    module_search_index_refresh()
    # Computing the vectors rewrote every row; a hub's table, whose free
    # space autovacuum hands to new rows, is compact like this. VACUUM FULL
    # leaves the visibility map empty, which a plain VACUUM fills in, as
    # autovacuum does on a live server: index-only scans rely on it.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM FULL")
            cursor.execute("VACUUM ANALYZE")
        else:  # SQLite (benchmarks/load.py's embedded run): no search vectors
            cursor.execute("ANALYZE")
    print(f"  seeded in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def pick_tags(rng, tags, tag_weights, base, task, domain, dataset) -> set:
    """Tags as people set them: mostly what the module is about, a few generic ones."""
    by_slug = {tag.slug: tag for tag in tags}
    chosen = {by_slug["lora"]} if rng.random() < 0.9 else set()
    if rng.random() < 0.6:
        chosen.add(by_slug["peft"])
    if rng.random() < 0.7:
        generation = (
            "text2text-generation" if base.task_type == "SEQ_2_SEQ_LM" else "text-generation"
        )
        chosen.add(by_slug[generation])
    for slug, chance in ((task, 0.8), (domain, 0.5), (dataset, 0.4), ("en", 0.5)):
        if rng.random() < chance:
            chosen.add(by_slug[slug])
    if rng.random() < 0.3:  # and now and then something else that is popular
        chosen.add(tags[rng.choices(range(len(tags)), tag_weights)[0]])
    return chosen


def fake_module(index, rng, owners, base_models, tags, tag_weights, now, taken: set):
    import datetime

    from modules.models import Module

    task = rng.choice(TASKS)
    domain = rng.choice(DOMAINS)
    dataset = rng.choice(DATASETS)
    base = rng.choice(base_models)
    r = rng.choice(RANKS)
    family = base.identifier.split("/")[1].split("-")[0].lower()
    owner = rng.choice(owners)
    stem = f"{task}-{domain}-{family}-r{r}-{rng.choice(ADJECTIVES)}"
    version = 1
    while (owner.pk, f"{stem}-v{version}") in taken:  # names are unique per owner
        version += 1
    name = f"{stem}-v{version}"
    taken.add((owner.pk, name))
    module_tags = pick_tags(rng, tags, tag_weights, base, task, domain, dataset)
    description = (
        f"A {rng.choice(ADJECTIVES)} {task.replace('-', ' ')} adapter for {domain} text, "
        f"trained on {dataset} in {rng.choice(LANGUAGES)}."
    )
    card = (
        f"---\nbase_model: {base.identifier}\nlibrary_name: peft\nlicense: apache-2.0\n"
        f"tags: [{', '.join(t.slug for t in module_tags)}]\ndatasets: [{dataset}]\n---\n\n"
        f"# {name}\n\n{description}\n\n## Training\n\n"
        + " ".join(rng.choice(DOMAINS + TASKS + ADJECTIVES) for _ in range(rng.randint(150, 600)))
    )
    created = now - datetime.timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))
    updated = created + datetime.timedelta(minutes=rng.randint(0, 90 * 24 * 60))
    hidden = base.hidden_size
    return (
        Module(
            owner=owner,
            name=name,
            base_model=base,
            description=description,
            card=card,
            r=r,
            lora_alpha=2 * r,
            target_modules=["q_proj", "v_proj"],
            task_type=base.task_type,
            adapter_config=peft_config(base.identifier, base.task_type, r),
            parameter_count=2 * base.num_layers * 2 * r * hidden,
            total_size=8 * base.num_layers * r * hidden,
            license=rng.choice(LICENSES),
            datasets=[dataset],
            visibility=Module.Visibility.PRIVATE if rng.random() < 0.03 else "public",
            download_count=int(rng.lognormvariate(3, 2)),
            like_count=int(rng.lognormvariate(0.5, 1.5)),
            created_at=min(created, now),
            updated_at=min(updated, now),
        ),
        module_tags,
    )


def peft_config(base: str, task_type: str, r: int) -> dict:
    return {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": base, "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
        "layers_pattern": None, "layers_to_transform": None, "loftq_config": {},
        "lora_alpha": 2 * r,
        "lora_dropout": 0.05, "megatron_config": None, "megatron_core": "megatron.core",
        "modules_to_save": None, "peft_type": "LORA", "r": r, "rank_pattern": {},
        "revision": None, "target_modules": ["q_proj", "v_proj"], "task_type": task_type,
        "use_dora": False, "use_rslora": False,
    }  # fmt: skip


# --- Queries -------------------------------------------------------------------------


def query_mix(n: int, rng: random.Random, owners: list, tag_slugs: list[str]) -> list[dict]:
    """Mixed queries: words, typos, filters and sorts in proportions a hub sees."""
    from modules.selectors import SORTS, ModuleFilters

    queries = []
    for _ in range(n):
        words, text = "", "no words"
        roll = rng.random()
        if roll < 0.03:
            words = rng.choice(["lora", "peft adapter"])  # matches nearly everything
            text = "common words"
        elif roll < 0.45:
            words = rng.choice(TASKS + DOMAINS + DATASETS).replace("-", " ")
            text = "one word"
        elif roll < 0.6:
            words = f"{rng.choice(TASKS)} {rng.choice(DOMAINS)}"
            text = "two words"
        elif roll < 0.7:
            word = rng.choice(TASKS)
            cut = rng.randrange(1, len(word) - 1)
            words = word[:cut] + word[cut + 1 :]  # a typo: one letter dropped
            text = "a typo"
        filters = {}
        if rng.random() < 0.3:
            filters["base_model"] = rng.choice(BASE_MODELS)[0]
        if rng.random() < 0.15:
            filters["task_type"] = rng.choice(["CAUSAL_LM", "SEQ_2_SEQ_LM"])
        if rng.random() < 0.2:
            filters["rank"] = rng.choice(RANKS)
        if rng.random() < 0.2:
            filters["tag"] = rng.choice(tag_slugs[:80])
        if rng.random() < 0.05:
            filters["owner"] = rng.choice(owners).username
        if rng.random() < 0.1:
            filters["license"] = rng.choice(["apache-2.0", "mit", "cc-by-4.0"])
        sort = rng.choice(["", "", *SORTS])
        order = "by relevance" if not sort else "sorted"
        queries.append(
            {
                "kind": f"{text}, {order}" if words else "filters and sort",
                "query": words,
                "filters": ModuleFilters(**filters),
                "sort": sort,
                # A tenth of the traffic is signed in (their private modules count too).
                "user": rng.choice(owners) if rng.random() < 0.1 else None,
                "page": 1 if rng.random() < 0.85 else rng.randint(2, 5),
            }
        )
    return queries


def run_list_page(spec: dict) -> int:
    """What the list page and the API do: search, count, fetch one page."""
    from modules.pagination import CappedPaginator
    from modules.selectors import module_search

    modules = module_search(
        query=spec["query"], filters=spec["filters"], sort=spec["sort"], user=spec["user"]
    )
    # get_page counts the matches (up to the limit, to know the number of
    # pages), then the page's rows and their tags are fetched: the queries a
    # list page makes.
    page = CappedPaginator(modules.prefetch_related("tags"), PAGE_SIZE).get_page(spec["page"])
    return len(list(page))


def hub_query_mix(n: int, rng: random.Random, owners: list, tag_slugs: list[str]) -> list[dict]:
    """/api/models lists as huggingface_hub's ``HfApi.list_models`` asks for them."""
    queries = []
    for _ in range(n):
        spec = {"search": "", "author": "", "filters": [], "sort": "", "limit": 0}
        roll = rng.random()
        if roll < 0.5:
            spec["search"] = rng.choice(TASKS + DATASETS)  # a part of the name
        elif roll < 0.6:
            spec["search"] = f"{rng.choice(TASKS)}-{rng.choice(DOMAINS)}"
        elif roll < 0.7:
            spec["search"] = rng.choice(owners).username  # an owner's name
        elif roll < 0.8:
            spec["search"] = rng.choice(["lora", "xyzzy"])  # in no name: a full scan
        elif roll < 0.9:
            spec["author"] = rng.choice(owners).username
        else:
            spec["filters"] = [rng.choice(tag_slugs[:30])]
        if rng.random() < 0.3:
            spec["sort"] = rng.choice(["downloads", "likes", "createdAt", "lastModified"])
        spec["limit"] = rng.choice([10, 20, 50, 100])
        spec["kind"] = "api/models " + (
            "search" if spec["search"] else "author" if spec["author"] else "filter"
        )
        queries.append(spec)
    return queries


def run_hub_list(spec: dict) -> int:
    """What /api/models does: one page of modules, and its items as huggingface_hub asks."""
    from modules.hub_protocol import hub_model_search
    from modules.hub_protocol.common import LIST_KEYS
    from modules.hub_protocol.lists import list_items, list_page

    modules = hub_model_search(
        user=None,
        search=spec["search"],
        author=spec["author"],
        filters=spec["filters"],
        sort=spec["sort"],
    )
    page, _ = list_page(modules, offset=0, limit=spec["limit"], keys=set(LIST_KEYS))
    return len(list_items(page, set(LIST_KEYS)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return (time.perf_counter() - started) * 1000


def describe(spec: dict) -> str:
    filters = {k: v for k, v in vars(spec["filters"]).items() if v not in ("", None)}
    who = "signed-in" if spec["user"] else "anonymous"
    sort = spec["sort"] or "default"
    return f"q={spec['query']!r} filters={filters} sort={sort} page={spec['page']} {who}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--seed", type=int, default=20231)
    args = parser.parse_args()

    url = bench_database_url(os.environ.get("DATABASE_URL", DEFAULT_SERVER))
    ensure_database(url, fresh=args.reseed)
    setup_django(url)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    from modules.models import Module, Tag
    from modules.selectors import tag_list

    rng = random.Random(args.seed)
    if args.reseed or Module.objects.count() != args.modules:
        print(f"Seeding {args.modules:,} modules into {settings.DATABASES['default']['NAME']} …")
        seed(args.modules, rng)

    owners = list(get_user_model().objects.filter(username__startswith="bench-"))
    tag_slugs = [t.slug for t in tag_list()[:200]] or list(
        Tag.objects.values_list("slug", flat=True)
    )
    ids = list(Module.objects.values_list("pk", flat=True))
    # Its own generator: the same queries whether or not this run seeded.
    queries = query_mix(args.queries, random.Random(args.seed + 1), owners, tag_slugs)
    hub_queries = hub_query_mix(args.queries // 4, random.Random(args.seed + 2), owners, tag_slugs)

    target = 50
    results = {}
    # PostgreSQL's default planner cost, then what the hub's connections use.
    for label, page_cost in (("PostgreSQL's default", "4"), ("the hub's setting", None)):
        with connection.cursor() as cursor:
            cursor.execute("RESET random_page_cost" if page_cost is None else
                           f"SET random_page_cost = {page_cost}")  # fmt: skip
            cursor.execute("SHOW random_page_cost")
            shown = cursor.fetchone()[0]
        results[label] = measure(queries, hub_queries, ids, rng)
        report(f"{label} (random_page_cost {shown})", results[label], len(queries), target)
    # The verdict is the hub's: its connections use its setting.
    return 0 if percentile(results["the hub's setting"][1], 95) < target else 1


def measure(queries: list[dict], hub_queries: list[dict], ids: list[int], rng: random.Random):
    from modules.models import Module
    from modules.selectors import ModuleFilters

    for spec in queries[:30]:  # warm the caches as a running hub has them
        run_list_page(spec)
    pk_times = [timed(lambda pk=pk: Module.objects.get(pk=pk)) for pk in rng.choices(ids, k=500)]
    query_times = [(timed(run_list_page, spec), spec) for spec in queries]
    # The most common word alone, anonymous, first page: the costliest search to rank.
    bare = {"kind": f"bare q={COMMON_WORD}", "query": COMMON_WORD, "filters": ModuleFilters(),
            "sort": "", "user": None, "page": 1}  # fmt: skip
    bare_times = [(timed(run_list_page, bare), bare) for _ in range(BARE_REPEATS)]
    hub_times = [(timed(run_hub_list, spec), spec) for spec in hub_queries]
    return pk_times, [t for t, _ in query_times], query_times, bare_times + hub_times


def report(label: str, result, query_count: int, target: float) -> None:
    from django.db import connection

    from modules.models import Module

    pk_times, times, query_times, other_times = result
    pk_p50 = statistics.median(pk_times)
    print()
    print(
        f"PostgreSQL {connection.pg_version // 10000}, {Module.objects.count():,} modules, "
        f"{query_count} mixed queries (search + filters + sort; count + page of {PAGE_SIZE}); "
        f"{label}"
    )
    print(f"  primary-key lookup   p50 {pk_p50:6.2f} ms   p95 {percentile(pk_times, 95):6.2f} ms")
    print(
        f"  search/filter/sort   p50 {statistics.median(times):6.2f} ms   "
        f"p95 {percentile(times, 95):6.2f} ms   p99 {percentile(times, 99):6.2f} ms   "
        f"max {max(times):6.2f} ms"
    )
    print(f"  ratio p95 / primary-key p50: {percentile(times, 95) / pk_p50:.0f}x")
    groups = {
        "text search": [t for t, s in query_times if s["query"]],
        "filters/sort only": [t for t, s in query_times if not s["query"]],
        "signed in": [t for t, s in query_times if s["user"]],
    }
    for name, values in groups.items():
        if values:
            print(f"    {name:18} n={len(values):3}  p50 {statistics.median(values):6.2f} ms  "
                  f"p95 {percentile(values, 95):6.2f} ms")  # fmt: skip
    print("  by kind of query:")
    by_kind: dict[str, list[float]] = {}
    for elapsed, spec in query_times + other_times:
        by_kind.setdefault(spec["kind"], []).append(elapsed)
    for kind, values in sorted(by_kind.items()):
        print(f"    {kind:34} n={len(values):4}  p50 {statistics.median(values):6.1f} ms  "
              f"p95 {percentile(values, 95):6.1f} ms  p99 {percentile(values, 99):6.1f} ms  "
              f"max {max(values):6.1f} ms")  # fmt: skip
    print("  slowest:")
    for elapsed, spec in sorted(query_times, key=lambda item: -item[0])[:5]:
        print(f"    {elapsed:6.1f} ms  {describe(spec)}")
    hub = [(elapsed, spec) for elapsed, spec in other_times if spec["kind"].startswith("api/")]
    for elapsed, spec in sorted(hub, key=lambda item: -item[0])[:3]:
        shown = {k: v for k, v in spec.items() if v and k != "kind"}
        print(f"    {elapsed:6.1f} ms  /api/models {shown}")
    verdict = "under" if percentile(times, 95) < target else "OVER"
    print(f"  p95 {verdict} the {target} ms target")


if __name__ == "__main__":
    sys.exit(main())
