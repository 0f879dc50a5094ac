"""Spread `xsearch index` over a Spark cluster: executors embed, the index receives records.

    spark-submit --master MASTER deploy/spark/xsearch_spark.py index DIR... \
        --index LOCATION --model MODEL --xsearch PATH_TO_BINARY

1. The driver asks the binary which image files under DIR... need work
   (`xsearch index --dry-run --json`: new, or changed since indexed), so a re-run lists only
   what changed and the index's schema stays in Rust.
2. The paths are spread over partitions. Each task streams its partition's paths through
   `xsearch embed --stdin -0` (the ingest pipeline's decoding, metadata and batched embedding),
   which writes JSON Lines records.
3. The records are committed with `xsearch import`, through the same writer as `xsearch index`:
   - `milvus://` locations take concurrent writers: each task pipes its records straight into
     its own `xsearch import`;
   - an index directory has one writer and lives on one machine: each task writes its records
     to a part file in a staging folder beside the index (`<index>.spark-stage/`, written under
     a temporary name and renamed when whole), and the driver imports the parts one after the
     other, then deletes them.
   Import is idempotent (a record held unchanged is skipped), so a retried or speculative task,
   or a re-run of the whole job, adds nothing twice.

Every executor needs the xsearch binary and the model directory at the paths given, the
folders at the same paths as the driver sees them, and the driver's time zone (TZ): an EXIF
time without an offset is read in the zone of the machine that embeds it.

The driver prints one JSON object on stdout: what was listed, embedded, added, updated, left
unchanged and failed, and the seconds taken. Exit status 0, or 2 when some files could not be
embedded (they are recorded as failures in the index, as `xsearch index` records them).

Needs pyspark (tested with 4.3.0, local mode) and Python 3.9 or later; nothing else.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

# Exit statuses of the xsearch commands that may mean the work was done: 0, 1 (nothing to
# do) and 2, which is also an error's status: 2 counts as done only where the output proves the
# run finished (a summary line that accounts for every path).
DONE = (0, 1, 2)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="xsearch_spark.py",
        description="Index image folders into an xsearch index with Spark executors embedding.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    index = commands.add_parser("index", help="add or refresh folders, as `xsearch index` does")
    index.add_argument("dirs", nargs="+", metavar="DIR", help="folders or files to index")
    index.add_argument("--index", required=True, metavar="LOCATION",
                       help="an index directory, or milvus://HOST:PORT/COLLECTION")
    index.add_argument("--model", required=True, metavar="MODEL",
                       help="the model directory (the same path on every executor) or hub id")
    index.add_argument("--xsearch", required=True, metavar="PATH",
                       help="the xsearch binary (the same path on every executor)")
    index.add_argument("--partitions", type=int, default=0, metavar="N",
                       help="tasks to split the files into [default: the default parallelism]")
    index.add_argument("--threads", type=int, default=0, metavar="N",
                       help="inference threads per task [default: spark.task.cpus]")
    return parser.parse_args(argv)


def is_milvus(location):
    return location.split("://", 1)[0] in ("milvus", "milvus+tls")


def xsearch(binary, location, model, *args):
    """An xsearch command line with the index and model named."""
    return [binary, "--index", location, "--model", model, *args]


def check(what, returncode, stderr, done=DONE):
    if returncode not in done:
        fail(what, f"exited with {returncode}", stderr)


class XsearchFailed(RuntimeError):
    """An xsearch command failed; its message ends with what xsearch said."""


def fail(what, why, stderr):
    message = stderr.decode("utf-8", "replace").strip()
    raise XsearchFailed(f"xsearch {what} {why}: {message}")


def import_summary(what, out, stderr, records):
    """The summary line of an `xsearch import` run that read `records` lines; an error if it
    printed none (an error ends it without one) or read fewer (the embedding stopped early)."""
    lines = out.splitlines()
    if not lines:
        fail(what, "printed no summary", stderr)
    summary = json.loads(lines[-1])
    if summary["records"] != records:
        fail(what, f"read {summary['records']} of {records} records", stderr)
    return summary


def pending_paths(args):
    """The image files `xsearch index` would read, as bytes (names need not be UTF-8)."""
    command = xsearch(args.xsearch, args.index, args.model,
                      "index", "--dry-run", "--json", "--quiet", *args.dirs)
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    # A dry run never skips a file: its 2 is an error.
    check("index --dry-run", run.returncode, run.stderr, done=(0, 1))
    paths = []
    for line in run.stdout.splitlines():
        item = json.loads(line)
        if "path_bytes" in item:
            paths.append(base64.b64decode(item["path_bytes"]))
        else:
            paths.append(item["path"].encode("utf-8"))
    return paths


def embed_command(binary, model, threads):
    command = [binary, "--model", model, "--quiet", "embed", "--stdin", "-0"]
    if threads > 0:
        command[1:1] = ["--threads", str(threads)]
    return command


def feed(stream, paths):
    """Writes NUL-separated paths into a process's stdin, then closes it (from a thread, so the
    process can write its output meanwhile)."""
    try:
        for path in paths:
            stream.write(path + b"\0")
    finally:
        stream.close()


def embed_partition(binary, model, threads, paths, out):
    """Streams `paths` through `xsearch embed --stdin -0` into the file object `out`."""
    command = embed_command(binary, model, threads)
    embed = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE)
    writer = threading.Thread(target=feed, args=(embed.stdin, paths))
    writer.start()
    stderr = embed.stderr.read()
    writer.join()
    check("embed", embed.wait(), stderr)


def import_task(binary, location, model, threads):
    """A task that embeds its partition and imports it itself (Milvus: concurrent writers)."""
    def run(paths):
        paths = list(paths)
        if not paths:
            return
        command = xsearch(binary, location, model, "--json", "--quiet", "import", "-")
        # Its stderr (a line per failure) goes to a file: a full pipe would stall it, and the
        # embedding feeding it, while this task waits for the embedding.
        with tempfile.TemporaryFile() as err:
            importer = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=err)
            embed_partition(binary, model, threads, paths, importer.stdin)
            importer.stdin.close()
            out = importer.stdout.read()
            err.seek(0)
            stderr = err.read()
            check("import", importer.wait(), stderr)
        yield import_summary("import", out, stderr, len(paths))
    return run


def stage_task(binary, model, threads, stage):
    """A task that embeds its partition into a part file of the staging folder, written under a
    temporary name and renamed when whole, so the driver never reads half a part. Yields the
    part's name and how many paths it holds records of."""
    def run(index, paths):
        paths = list(paths)
        if not paths:
            return
        name = f"part-{index:05d}-{uuid.uuid4().hex}.jsonl"
        partial = os.path.join(stage, "." + name)
        with open(partial, "wb") as out:
            embed_partition(binary, model, threads, paths, out)
        os.rename(partial, os.path.join(stage, name))
        yield name, len(paths)
    return run


def import_parts(args, stage, parts):
    """Imports the staged part files into the index directory, one writer, then deletes them."""
    summaries = []
    for name, records in sorted(parts):
        path = os.path.join(stage, name)
        command = xsearch(args.xsearch, args.index, args.model, "--json", "--quiet", "import", path)
        run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        check("import", run.returncode, run.stderr)
        summaries.append(import_summary("import", run.stdout, run.stderr, records))
        os.remove(path)
    return summaries


def main(argv):
    args = parse_args(argv)
    from pyspark.sql import SparkSession  # imported late: --help works without Spark

    started = time.monotonic()
    spark = SparkSession.builder.appName("xsearch index").getOrCreate()
    context = spark.sparkContext
    threads = args.threads or int(context.getConf().get("spark.task.cpus", "1"))
    paths = pending_paths(args)
    totals = {"listed": len(paths), "records": 0, "added": 0, "updated": 0, "unchanged": 0,
              "failed": 0}
    if paths:
        partitions = max(1, min(len(paths), args.partitions or context.defaultParallelism))
        rdd = context.parallelize(paths, partitions)
        if is_milvus(args.index):
            summaries = rdd.mapPartitions(
                import_task(args.xsearch, args.index, args.model, threads)).collect()
        else:
            stage = os.path.abspath(args.index.rstrip("/")) + ".spark-stage"
            os.makedirs(stage, exist_ok=True)
            parts = rdd.mapPartitionsWithIndex(
                stage_task(args.xsearch, args.model, threads, stage)).collect()
            summaries = import_parts(args, stage, parts)
            os.rmdir(stage)
        for summary in summaries:
            for key in ("records", "added", "updated", "unchanged", "failed"):
                totals[key] += summary[key]
    spark.stop()
    totals["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(totals), flush=True)
    return 2 if totals["failed"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except XsearchFailed as err:
        # In the driver: said plainly. A task's failure reaches here as Spark's own report.
        print(f"xsearch_spark.py: {err}", file=sys.stderr)
        sys.exit(2)
