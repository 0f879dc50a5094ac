"""Spark ingest (issue 18): `deploy/spark/xsearch_spark.py` in `local[N]` against `xsearch index`
on the same machine and folder, in one run, interleaved rounds.

    /work/venv/bin/python benches/make_photos.py target/spark-bench/photos 96
    cargo build --release -p xsearch-cli
    python3 benches/spark_ingest.py --spark-submit /work/venv-spark/bin/spark-submit \
        --xsearch target/release/xsearch --model target/spark-bench/rn50 \
        --photos target/spark-bench/photos --work target/spark-bench/runs --rounds 3

Per round (the order alternates between rounds, so a drift in the machine's load does not
favour one side): `xsearch index PHOTOS` into a fresh index (its threads: one per core), the
Spark job into a fresh index directory (`local[N]`, one task per core, `--threads 1` each), and
the Spark job again over the same folder, which lists nothing and so measures the job's fixed
cost (JVM and SparkSession start, the driver's `--dry-run` listing, stop). Reports wall-clock
images/s of each, the ratio Spark / index, and Spark's marginal rate (images over the job's
time less its fixed cost), medians over rounds; the 1-minute load average at each step; the
CPU model. Python 3 standard library only (the Spark job needs pyspark, which spark-submit
brings).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "spark",
                   "xsearch_spark.py")


def load():
    return os.getloadavg()[0]


def timed(command, env=None):
    started = time.monotonic()
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         check=False)
    seconds = time.monotonic() - started
    if run.returncode not in (0, 1):
        raise SystemExit(f"{command[0]} exited with {run.returncode}:\n"
                         f"{run.stderr.decode(errors='replace')[-3000:]}")
    return seconds, run.stdout.decode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spark-submit", required=True)
    parser.add_argument("--xsearch", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--photos", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    args = parser.parse_args()
    xsearch, model, photos = (os.path.abspath(p) for p in (args.xsearch, args.model, args.photos))
    count = len([n for n in os.listdir(photos) if n.endswith(".jpg")])
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1",
               PYSPARK_PYTHON=os.path.join(os.path.dirname(args.spark_submit), "python3"))
    cpu = next((line.split(":", 1)[1].strip()
                for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout
                .splitlines() if line.startswith("Model name")), "?")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu}, {args.cores} cores, "
          f"{count} photos, load {load():.2f}", flush=True)
    rows = []
    for round_ in range(args.rounds):
        work = os.path.join(os.path.abspath(args.work), f"round-{round_}")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        index_dir, spark_dir = os.path.join(work, "index"), os.path.join(work, "spark")
        spark = [args.spark_submit, "--master", f"local[{args.cores}]",
                 "--conf", "spark.ui.enabled=false", JOB, "index", photos, "--index", spark_dir,
                 "--model", model, "--xsearch", xsearch]
        row = {"load_start": load()}

        def run_index():
            row["index_s"], _ = timed([xsearch, "--quiet", "--model", model, "--index",
                                        index_dir, "index", photos])

        def run_spark():
            row["spark_s"], out = timed(spark, env)
            summary = json.loads(out.splitlines()[-1])
            assert summary["added"] == count, summary
            row["spark_job_s"] = summary["seconds"]

        for step in (run_index, run_spark) if round_ % 2 == 0 else (run_spark, run_index):
            step()
        row["fixed_s"], out = timed(spark, env)
        assert json.loads(out.splitlines()[-1])["listed"] == 0
        row["load_end"] = load()
        row["index_rate"] = count / row["index_s"]
        row["spark_rate"] = count / row["spark_s"]
        row["ratio"] = row["spark_rate"] / row["index_rate"]
        row["marginal_rate"] = count / max(row["spark_s"] - row["fixed_s"], 1e-9)
        print(json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
        rows.append(row)
        shutil.rmtree(work)
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print("median " + json.dumps({k: round(v, 3) for k, v in median.items()}), flush=True)


if __name__ == "__main__":
    main()
