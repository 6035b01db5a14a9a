"""The Splink side of `tessera-bench identity`, and the scorer both sides share.

    python3 splink_bench.py splink <records.parquet> <clusters_out.parquet> <threshold>
    python3 splink_bench.py splink-tutorial <records.parquet> <clusters_out.parquet> <threshold>
    python3 splink_bench.py score <clusters.parquet> <truth.parquet>
    python3 splink_bench.py ceiling <records.parquet> <truth.parquet>

Splink (DuckDB backend) gets the same standardised records Tessera resolves
(`unify.identity_records`) and a model equivalent to Tessera's default `[identity]` settings:
the same blocking rules, the same comparisons and levels (term frequencies where Tessera uses
them), the prior from the same deterministic rules at the same assumed recall, u from 1M random
pairs, m by EM once per blocking rule, and clustering at the same threshold.
"""

import json
import sys
import time


def predict_and_cluster(linker, con, threshold, out_path, started):
    """Scores, clusters at the threshold, writes `record_key, customer_id` to `out_path`, and
    prints the phases' times (training is what ran since `started`)."""
    trained = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold
    )
    con.execute(
        f"copy (select unique_id as record_key, cast(cluster_id as varchar) as customer_id "
        f"from {clusters.physical_name}) to '{out_path}' (format parquet)"
    )
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "train_s": trained - started,
                "predict_cluster_s": done - trained,
                "total_s": done - started,
            }
        )
    )


def splink(records_path, out_path, threshold):
    import duckdb
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(
        f"create table records as select record_key as unique_id, * exclude (record_key) "
        f"from read_parquet('{records_path}')"
    )
    db_api = DuckDBAPI(connection=con)
    df = db_api.register("records")

    def levels(name, extra):
        return cl.CustomComparison(
            output_column_name=name,
            comparison_levels=[cll.NullLevel(name)] + extra + [cll.ElseLevel()],
        )

    first = levels(
        "first_name",
        [
            cll.ExactMatchLevel("first_name", term_frequency_adjustments=True),
            cll.CustomLevel(
                "first_name_root_l = first_name_root_r", "nickname"
            ),
            cll.JaroWinklerLevel("first_name", 0.9),
        ],
    )
    last = levels(
        "last_name",
        [
            cll.ExactMatchLevel("last_name", term_frequency_adjustments=True),
            cll.JaroWinklerLevel("last_name", 0.92),
            cll.CustomLevel("last_name_sound_l = last_name_sound_r", "sounds alike"),
        ],
    )
    birth = levels(
        "birth_date",
        [
            cll.ExactMatchLevel("birth_date"),
            cll.CustomLevel(
                "abs(date_diff('day', birth_date_l, birth_date_r)) <= 31", "within a month"
            ),
        ],
    )
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("phone"),
            block_on("loyalty_number"),
            block_on("last_name_sound", "birth_date"),
            block_on("postal_code", "first_name_root"),
        ],
        comparisons=[
            first,
            last,
            cl.ExactMatch("email"),
            cl.ExactMatch("phone"),
            cl.ExactMatch("loyalty_number"),
            birth,
            cl.ExactMatch("postal_code").configure(term_frequency_adjustments=True),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker(df, settings, log_level="WARNING")
    linker.training.estimate_probability_two_random_records_match(
        [
            block_on("email", "first_name_root"),
            block_on("phone", "first_name_root"),
            block_on("loyalty_number", "first_name_root"),
            block_on("first_name_root", "last_name", "birth_date"),
        ],
        recall=0.8,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=42)
    for rule in [
        block_on("email"),
        block_on("phone"),
        block_on("loyalty_number"),
        block_on("last_name_sound", "birth_date"),
        block_on("postal_code", "first_name_root"),
    ]:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(rule)
        except Exception as e:  # a session with nothing left to train is skipped, as in Tessera
            print(f"EM session skipped: {e}", file=sys.stderr)
    predict_and_cluster(linker, con, threshold, out_path, started)


def splink_tutorial(records_path, out_path, threshold):
    """Splink as a new user sets it up from its tutorial, on the same standardised records:
    `NameComparison` on both names, `DateOfBirthComparison`, `EmailComparison`,
    Damerau-Levenshtein on the phone's digits (and a national id's), exact postcode with term
    frequencies (each where the records have the column); the tutorial's blocking rules; the
    prior from deterministic rules at recall 0.7; u by random sampling; m by EM on the
    tutorial's two blocking rules (names, birth date)."""
    import duckdb
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    started = time.perf_counter()
    con = duckdb.connect()
    present = {
        r[0] for r in con.execute(f"describe select * from read_parquet('{records_path}')").fetchall()
    }
    wanted = [c for c in ["first_name", "last_name", "birth_date", "email", "phone_key",
                          "soc_sec_id", "postal_code"] if c in present]
    con.execute(
        f"create table records as select record_key as unique_id, {', '.join(wanted)} "
        f"from read_parquet('{records_path}')"
    )
    db_api = DuckDBAPI(connection=con)
    df = db_api.register("records")
    comparisons = [
        cl.NameComparison("first_name"),
        cl.NameComparison("last_name"),
        cl.DateOfBirthComparison("birth_date", input_is_string=False),
    ]
    blocking = [
        block_on("first_name", "last_name"),
        block_on("last_name", "birth_date"),
        block_on("first_name", "birth_date"),
    ]
    if "email" in present:
        comparisons.append(cl.EmailComparison("email"))
        blocking.append(block_on("email"))
    for digits in ["phone_key", "soc_sec_id"]:
        if digits in present:
            comparisons.append(cl.DamerauLevenshteinAtThresholds(digits, [1, 2]))
            blocking.append(block_on(digits))
    if "postal_code" in present:
        comparisons.append(
            cl.ExactMatch("postal_code").configure(term_frequency_adjustments=True)
        )
        blocking.append(block_on("postal_code", "first_name"))
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=blocking,
        comparisons=comparisons,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker(df, settings, log_level="WARNING")
    deterministic = [block_on("first_name", "last_name", "birth_date")]
    if "email" in present:
        deterministic.append(block_on("email"))
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=42)
    for rule in [block_on("first_name", "last_name"), block_on("birth_date")]:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predict_and_cluster(linker, con, threshold, out_path, started)


def score(clusters_path, truth_path):
    import pyarrow.parquet as pq

    clusters = pq.read_table(clusters_path).to_pydict()
    truth = pq.read_table(truth_path).to_pydict()
    person_column = "true_person_id" if "true_person_id" in truth else "person_id"
    person = dict(zip(truth["record_key"], truth[person_column]))
    pair_counts = {}
    by_cluster = {}
    by_person = {}
    for key, customer in zip(clusters["record_key"], clusters["customer_id"]):
        p = person.get(key)
        if p is None:
            continue
        by_cluster[customer] = by_cluster.get(customer, 0) + 1
        by_person[p] = by_person.get(p, 0) + 1
        pair_counts[(customer, p)] = pair_counts.get((customer, p), 0) + 1

    def pairs(counts):
        return sum(n * (n - 1) // 2 for n in counts.values())

    tp, predicted, actual = pairs(pair_counts), pairs(by_cluster), pairs(by_person)
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(
        json.dumps(
            {
                "records": sum(by_person.values()),
                "true_pairs": actual,
                "predicted_pairs": predicted,
                "precision": precision,
                "recall": recall,
                "f1": f1,
            }
        )
    )


def ceiling(records_path, truth_path):
    """The highest pairwise recall evidence allows: every true pair that shares a key is linked
    (transitively), the rest never. With the default blocking rules' keys, with first name
    root + last name added, and with email or phone alone. Also the share of named records
    whose first name root + last name is held by records of more than one person."""
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"create table r as select i.*, t.true_person_id as p from read_parquet('{records_path}') i "
        f"join read_parquet('{truth_path}') t using (record_key)"
    )
    con.execute(
        """create table tp as select a.record_key as ka, b.record_key as kb,
        coalesce(a.email = b.email, false) as email,
        coalesce(a.phone = b.phone, false) as phone,
        coalesce(a.loyalty_number = b.loyalty_number, false) as loyalty,
        coalesce(a.last_name_sound = b.last_name_sound and a.birth_date = b.birth_date, false) as sound_birth,
        coalesce(a.postal_code = b.postal_code and a.first_name_root = b.first_name_root, false) as postal_first,
        coalesce(a.first_name_root = b.first_name_root and a.last_name = b.last_name, false) as name
        from r a join r b on a.p = b.p and a.record_key < b.record_key"""
    )
    keys = con.execute("select record_key, p from r").fetchall()
    true_pairs = con.execute("select count(*) from tp").fetchone()[0]

    def recall(condition):
        parent = {}

        def find(x):
            root = x
            while parent.get(root, root) != root:
                root = parent[root]
            while parent.get(x, x) != root:
                parent[x], x = root, parent[x]
            return root

        for a, b in con.execute(f"select ka, kb from tp where {condition}").fetchall():
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb
        groups = {}
        for key, person in keys:
            groups[(find(key), person)] = groups.get((find(key), person), 0) + 1
        linked = sum(n * (n - 1) // 2 for n in groups.values())
        return linked / true_pairs if true_pairs else 1.0

    namesakes = con.execute(
        """select avg(case when people > 1 then 1.0 else 0.0 end) from r join
        (select first_name_root, last_name, count(distinct p) as people from r
         where first_name_root is not null and last_name is not null group by 1, 2) n
        using (first_name_root, last_name)"""
    ).fetchone()[0]
    print(
        json.dumps(
            {
                "true_pairs": true_pairs,
                "blocking_keys": recall(
                    "email or phone or loyalty or sound_birth or postal_first"
                ),
                "blocking_keys_and_name": recall(
                    "email or phone or loyalty or sound_birth or postal_first or name"
                ),
                "email_or_phone": recall("email or phone"),
                "named_records_with_namesakes": namesakes,
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "splink":
        splink(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif sys.argv[1] == "splink-tutorial":
        splink_tutorial(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif sys.argv[1] == "score":
        score(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "ceiling":
        ceiling(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
    sys.stdout.flush()
