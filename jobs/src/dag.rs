//! The job graph: dependencies from the tables each job reads, cycle detection, topological
//! order, and selection (`name`, `tag:x`, `path:jobs/profiles`, `name+`, `+name`).

use std::collections::{BTreeMap, BTreeSet};

use crate::job::{Job, JobError};

/// A `--select` that selects nothing or cannot be read (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadSelection(pub String);

impl From<BadSelection> for crate::errors::Error {
    fn from(e: BadSelection) -> Self {
        crate::errors::Error::typed(crate::errors::ErrorKind::Usage, e)
    }
}

/// Jobs with their dependencies resolved.
#[derive(Debug, Clone)]
pub struct Dag {
    /// Jobs in a topological order (every job after the jobs it reads), ties by name.
    pub jobs: Vec<Job>,
    /// For each job (index in `jobs`), the indexes of the jobs it reads.
    pub upstream: Vec<Vec<usize>>,
    /// For each job, the indexes of the jobs that read it.
    pub downstream: Vec<Vec<usize>>,
}

/// How a reference of a job resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Another job's output.
    Job(String),
    /// A source of the project.
    Source(String),
    /// A table already in the warehouse that no job writes.
    Warehouse(String),
}

impl Dag {
    /// Builds the graph. `is_known` says whether a reference that is not a job is a source or
    /// a warehouse table. Unknown references and cycles are errors naming the files; the jobs
    /// they concern are dropped (with everything downstream), the others kept.
    pub fn build(jobs: Vec<Job>, is_known: impl Fn(&str) -> Option<Input>) -> (Dag, Vec<JobError>) {
        let mut errors = Vec::new();
        let mut jobs = jobs;
        loop {
            let names: BTreeMap<String, usize> = jobs
                .iter()
                .enumerate()
                .flat_map(|(i, j)| j.outputs().into_iter().map(move |o| (o, i)))
                .collect();
            // Unknown references.
            let mut bad = BTreeSet::new();
            for (i, job) in jobs.iter().enumerate() {
                let mut refs: Vec<String> = job.references.iter().cloned().collect();
                for test in &job.config.tests {
                    refs.extend(test.references());
                }
                for r in refs {
                    if r == job.name {
                        errors.push(JobError {
                            path: job.path.clone(),
                            line: None,
                            message: format!("the job reads its own output `{r}`"),
                        });
                        bad.insert(i);
                    } else if !names.contains_key(&r) && is_known(&r).is_none() {
                        errors.push(JobError {
                            path: job.path.clone(),
                            line: None,
                            message: format!("`{r}` is not a job, a source or a warehouse table"),
                        });
                        bad.insert(i);
                    }
                }
            }
            if bad.is_empty() {
                break;
            }
            jobs = drop_with_dependents(jobs, &bad, &mut errors);
        }
        // Topological order (Kahn, smallest name first for a stable order).
        loop {
            let names: BTreeMap<String, usize> = jobs
                .iter()
                .enumerate()
                .flat_map(|(i, j)| j.outputs().into_iter().map(move |o| (o, i)))
                .collect();
            let upstream: Vec<Vec<usize>> = jobs
                .iter()
                .map(|j| {
                    job_inputs(j)
                        .filter_map(|r| names.get(&r).copied())
                        .filter(|&u| jobs[u].name != j.name)
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect()
                })
                .collect();
            let mut remaining: Vec<usize> = upstream.iter().map(Vec::len).collect();
            let mut downstream = vec![Vec::new(); jobs.len()];
            for (i, ups) in upstream.iter().enumerate() {
                for &u in ups {
                    downstream[u].push(i);
                }
            }
            let mut ready: BTreeSet<(String, usize)> = (0..jobs.len())
                .filter(|&i| remaining[i] == 0)
                .map(|i| (jobs[i].name.clone(), i))
                .collect();
            let mut order = Vec::with_capacity(jobs.len());
            while let Some(first) = ready.pop_first() {
                let i = first.1;
                order.push(i);
                for &d in &downstream[i] {
                    remaining[d] -= 1;
                    if remaining[d] == 0 {
                        ready.insert((jobs[d].name.clone(), d));
                    }
                }
            }
            if order.len() == jobs.len() {
                let position: Vec<usize> = {
                    let mut p = vec![0; jobs.len()];
                    for (pos, &i) in order.iter().enumerate() {
                        p[i] = pos;
                    }
                    p
                };
                let mut slots: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
                let jobs: Vec<Job> = order
                    .iter()
                    .map(|&i| slots[i].take().expect("each job once"))
                    .collect();
                let remap = |v: &Vec<usize>| {
                    let mut v: Vec<usize> = v.iter().map(|&i| position[i]).collect();
                    v.sort_unstable();
                    v
                };
                let upstream = order.iter().map(|&i| remap(&upstream[i])).collect();
                let downstream = order.iter().map(|&i| remap(&downstream[i])).collect();
                return (
                    Dag {
                        jobs,
                        upstream,
                        downstream,
                    },
                    errors,
                );
            }
            // A cycle: name it, drop its jobs (and their dependents), order the rest.
            let stuck: BTreeSet<usize> = (0..jobs.len()).filter(|i| !order.contains(i)).collect();
            let cycle = find_cycle(&stuck, &upstream);
            let files: Vec<String> = cycle
                .iter()
                .map(|&i| format!("{} ({})", jobs[i].name, jobs[i].path.display()))
                .collect();
            for &i in &cycle {
                errors.push(JobError {
                    path: jobs[i].path.clone(),
                    line: None,
                    message: format!("dependency cycle: {}", files.join(" -> ")),
                });
            }
            let bad: BTreeSet<usize> = cycle.into_iter().collect();
            jobs = drop_with_dependents(jobs, &bad, &mut errors);
        }
    }

    /// Index of a job by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.name == name).or_else(|| {
            self.jobs
                .iter()
                .position(|j| j.outputs().iter().any(|o| o == name))
        })
    }

    /// The jobs a selection picks (indexes in order). An empty selection picks every job.
    pub fn select(&self, selectors: &[String]) -> Result<Vec<usize>, String> {
        if selectors.is_empty() {
            return Ok((0..self.jobs.len()).collect());
        }
        let mut picked = BTreeSet::new();
        for raw in selectors.iter().flat_map(|s| s.split([',', ' '])) {
            let selector = raw.trim();
            if selector.is_empty() {
                continue;
            }
            let (ancestors, rest) = match selector.strip_prefix('+') {
                Some(rest) => (true, rest),
                None => (false, selector),
            };
            let (descendants, core) = match rest.strip_suffix('+') {
                Some(core) => (true, core),
                None => (false, rest),
            };
            let base: Vec<usize> = if let Some(tag) = core.strip_prefix("tag:") {
                (0..self.jobs.len())
                    .filter(|&i| self.jobs[i].config.tags.iter().any(|t| t == tag))
                    .collect()
            } else if let Some(path) = core.strip_prefix("path:") {
                let path = path.trim_end_matches('/');
                (0..self.jobs.len())
                    .filter(|&i| {
                        let p = self.jobs[i].path.to_string_lossy().replace('\\', "/");
                        p == path || p.starts_with(&format!("{path}/"))
                    })
                    .collect()
            } else {
                let name = core.to_lowercase();
                let i = self.index(&name).ok_or_else(|| {
                    format!("`{core}` selects nothing: there is no job named `{name}`")
                })?;
                vec![i]
            };
            if base.is_empty() {
                return Err(format!("`{selector}` selects no job"));
            }
            for i in base {
                picked.insert(i);
                if ancestors {
                    self.walk(i, &self.upstream, &mut picked);
                }
                if descendants {
                    self.walk(i, &self.downstream, &mut picked);
                }
            }
        }
        Ok(picked.into_iter().collect())
    }

    fn walk(&self, from: usize, edges: &[Vec<usize>], seen: &mut BTreeSet<usize>) {
        let mut stack = vec![from];
        while let Some(i) = stack.pop() {
            for &n in &edges[i] {
                if seen.insert(n) {
                    stack.push(n);
                }
            }
        }
    }
}

fn job_inputs(job: &Job) -> impl Iterator<Item = String> + '_ {
    job.references
        .iter()
        .cloned()
        .chain(job.config.tests.iter().flat_map(|t| t.references()))
}

/// Removes `bad` jobs and every job that (transitively) reads them, recording why.
fn drop_with_dependents(
    jobs: Vec<Job>,
    bad: &BTreeSet<usize>,
    errors: &mut Vec<JobError>,
) -> Vec<Job> {
    let mut dropped: BTreeSet<String> = bad.iter().map(|&i| jobs[i].name.clone()).collect();
    loop {
        let before = dropped.len();
        for job in &jobs {
            if !dropped.contains(&job.name)
                && let Some(up) = job_inputs(job).find(|r| dropped.contains(r))
            {
                errors.push(JobError {
                    path: job.path.clone(),
                    line: None,
                    message: format!("skipped: it reads `{up}`, which has errors"),
                });
                dropped.insert(job.name.clone());
            }
        }
        if dropped.len() == before {
            break;
        }
    }
    jobs.into_iter()
        .filter(|j| !dropped.contains(&j.name))
        .collect()
}

/// One cycle among `stuck` jobs (each has an upstream job in `stuck`).
fn find_cycle(stuck: &BTreeSet<usize>, upstream: &[Vec<usize>]) -> Vec<usize> {
    let Some(&start) = stuck.iter().next() else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = upstream[current]
            .iter()
            .copied()
            .find(|u| stuck.contains(u))
            .expect("a stuck job has a stuck upstream job");
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path[pos..].to_vec();
            cycle.reverse();
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::parse_job;
    use std::path::Path;

    fn job(path: &str, sql: &str) -> Job {
        parse_job(Path::new(path), sql).unwrap()
    }

    fn known(name: &str) -> Option<Input> {
        (name == "src").then(|| Input::Source(name.into()))
    }

    #[test]
    fn orders_by_references_and_selects() {
        let jobs = vec![
            job(
                "jobs/c.sql",
                "-- @tags: t\nselect * from b join a using (x)",
            ),
            job("jobs/b.sql", "select * from a"),
            job("jobs/a.sql", "select * from src"),
            job("jobs/d.sql", "select * from src"),
        ];
        let (dag, errors) = Dag::build(jobs, known);
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = dag.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "c", "d"]);
        let sel = |s: &str| -> Vec<&str> {
            dag.select(&[s.to_string()])
                .unwrap()
                .into_iter()
                .map(|i| dag.jobs[i].name.as_str())
                .collect()
        };
        assert_eq!(sel("b+"), vec!["b", "c"]);
        assert_eq!(sel("+b"), vec!["a", "b"]);
        assert_eq!(sel("tag:t"), vec!["c"]);
        assert_eq!(sel("path:jobs/d.sql,a"), vec!["a", "d"]);
        assert!(dag.select(&["nope".into()]).is_err());
    }

    #[test]
    fn cycles_and_unknown_tables_name_the_files_and_spare_the_rest() {
        let jobs = vec![
            job("jobs/a.sql", "select * from b"),
            job("jobs/b.sql", "select * from a"),
            job("jobs/c.sql", "select * from a"),
            job("jobs/d.sql", "select * from missing_table"),
            job("jobs/e.sql", "select * from src"),
        ];
        let (dag, errors) = Dag::build(jobs, known);
        let names: Vec<&str> = dag.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, vec!["e"]);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.starts_with("jobs/d.sql: `missing_table`")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|e| e.contains("dependency cycle")
                && e.contains("jobs/a.sql")
                && e.contains("jobs/b.sql")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|e| e.starts_with("jobs/c.sql: skipped")),
            "{text:?}"
        );
    }
}
