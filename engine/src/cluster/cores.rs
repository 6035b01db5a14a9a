//! The scheduler's count of each executor's free cores, kept honest.
//!
//! Ballista 55 pushes tasks to the cores its scheduler believes free: binding a task takes its
//! cores from the executor's budget and the task's final status gives them back. When an
//! executor is lost while a stage that read its output is running, the scheduler rolls that
//! stage back and cancels its tasks on the surviving executors — and the statuses those
//! cancelled tasks send afterwards no longer find their task, so their cores are never given
//! back. Once a survivor's cores have all leaked this way, every later job waits forever (an
//! executor killed during a two-stage join left the other unable to run a plain `group by`).
//! Ballista fixed the same leak for cancelled jobs (apache/datafusion-ballista#2418), not for
//! this path.
//!
//! [`HonestCores`] is Ballista's in-memory cluster state with one addition: before it binds
//! tasks it compares, per executor, the cores it has handed out with the cores the running
//! jobs' tasks hold, and gives back the difference. Binding and the statuses that free cores
//! are handled on the scheduler's one event loop, so at that moment every finished task has
//! already been refunded and every bound task is in its job's graph.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ballista_core::JobId;
use ballista_core::error::Result;
use ballista_core::serde::protobuf::{ExecutorHeartbeat, RunningTask, task_status};
use ballista_core::serde::scheduler::{ExecutorData, ExecutorMetadata};
use ballista_scheduler::cluster::memory::InMemoryClusterState;
use ballista_scheduler::cluster::{BoundTask, ClusterState, ClusterStateEventStream, ExecutorSlot};
use ballista_scheduler::config::TaskDistributionPolicy;
use ballista_scheduler::state::task_manager::JobInfoCache;

/// Ballista's in-memory cluster state, giving back the cores no running task holds.
#[derive(Default)]
pub(crate) struct HonestCores {
    inner: InMemoryClusterState,
    /// Cores handed out per registered executor and not given back yet.
    bound: Mutex<HashMap<String, u32>>,
}

impl HonestCores {
    /// Cores the running tasks of `jobs` hold, per executor.
    async fn held(jobs: &HashMap<JobId, JobInfoCache>) -> HashMap<String, u32> {
        let mut held: HashMap<String, u32> = HashMap::new();
        for job in jobs.values() {
            let graph = job.execution_graph.read().await;
            for stage in graph.stages().values() {
                for task in stage.task_infos().unwrap_or_default() {
                    if let task_status::Status::Running(RunningTask { executor_id }) =
                        &task.task_status
                    {
                        *held.entry(executor_id.clone()).or_default() += task.vcores_consumed;
                    }
                }
            }
        }
        held
    }

    /// The cores handed out beyond what the running tasks hold, per executor; taken off the
    /// count of handed-out cores.
    fn leaked(&self, held: &HashMap<String, u32>) -> Vec<ExecutorSlot> {
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        let mut leaked = Vec::new();
        for (executor, cores) in bound.iter_mut() {
            let holding = held.get(executor).copied().unwrap_or(0);
            if *cores > holding {
                leaked.push((executor.clone(), *cores - holding));
                *cores = holding;
            }
        }
        leaked
    }
}

#[async_trait::async_trait]
impl ClusterState for HonestCores {
    async fn init(&self) -> Result<()> {
        self.inner.init().await
    }

    async fn bind_schedulable_tasks(
        &self,
        distribution: TaskDistributionPolicy,
        active_jobs: Arc<HashMap<JobId, JobInfoCache>>,
        executors: Option<HashSet<String>>,
    ) -> Result<Vec<BoundTask>> {
        let leaked = self.leaked(&Self::held(&active_jobs).await);
        if !leaked.is_empty() {
            tracing::warn!(
                ?leaked,
                "giving back executor cores that no running task holds (tasks cancelled when a \
                 lost executor rolled their stage back)"
            );
            self.inner.unbind_tasks(leaked).await?;
        }
        let tasks = self
            .inner
            .bind_schedulable_tasks(distribution, active_jobs, executors)
            .await?;
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        for (executor, task) in &tasks {
            *bound.entry(executor.clone()).or_default() += task.vcores_consumed;
        }
        Ok(tasks)
    }

    async fn unbind_tasks(&self, executor_slots: Vec<ExecutorSlot>) -> Result<()> {
        // Never more than was handed out: a late status of a rolled-back task can name a
        // task slot reused by the stage's next attempt.
        let slots = {
            let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
            executor_slots
                .into_iter()
                .filter_map(|(executor, cores)| {
                    let held = bound.get_mut(&executor)?;
                    let back = cores.min(*held);
                    *held -= back;
                    (back > 0).then_some((executor, back))
                })
                .collect::<Vec<_>>()
        };
        self.inner.unbind_tasks(slots).await
    }

    async fn register_executor(
        &self,
        metadata: ExecutorMetadata,
        spec: ExecutorData,
    ) -> Result<()> {
        let id = metadata.id.clone();
        let busy = spec.total_vcores.saturating_sub(spec.available_vcores);
        self.inner.register_executor(metadata, spec).await?;
        self.bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, busy);
        Ok(())
    }

    async fn save_executor_metadata(&self, metadata: ExecutorMetadata) -> Result<()> {
        self.inner.save_executor_metadata(metadata).await
    }

    async fn get_executor_metadata(&self, executor_id: &str) -> Result<ExecutorMetadata> {
        self.inner.get_executor_metadata(executor_id).await
    }

    async fn registered_executor_metadata(&self) -> Vec<ExecutorMetadata> {
        self.inner.registered_executor_metadata().await
    }

    async fn save_executor_heartbeat(&self, heartbeat: ExecutorHeartbeat) -> Result<()> {
        self.inner.save_executor_heartbeat(heartbeat).await
    }

    async fn remove_executor(&self, executor_id: &str) -> Result<()> {
        self.bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(executor_id);
        self.inner.remove_executor(executor_id).await
    }

    fn executor_heartbeats(&self) -> HashMap<String, ExecutorHeartbeat> {
        self.inner.executor_heartbeats()
    }

    fn get_executor_heartbeat(&self, executor_id: &str) -> Option<ExecutorHeartbeat> {
        self.inner.get_executor_heartbeat(executor_id)
    }

    async fn cluster_state_events(&self) -> Result<ClusterStateEventStream> {
        self.inner.cluster_state_events().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballista_core::extension::SessionConfigExt;
    use ballista_core::serde::protobuf::{ShuffleWritePartition, SuccessfulTask, TaskStatus};
    use ballista_core::serde::scheduler::{
        ExecutorOperatingSystemSpecification, ExecutorSpecification,
    };
    use ballista_scheduler::planner::DefaultDistributedPlanner;
    use ballista_scheduler::state::execution_graph::{ExecutionGraphBox, StaticExecutionGraph};
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    fn executor(id: &str, vcores: u32) -> (ExecutorMetadata, ExecutorData) {
        let metadata = ExecutorMetadata {
            id: id.into(),
            host: "localhost".into(),
            port: 1,
            grpc_port: 2,
            specification: ExecutorSpecification { vcores },
            os_info: ExecutorOperatingSystemSpecification::default(),
        };
        let data = ExecutorData {
            executor_id: id.into(),
            total_vcores: vcores,
            available_vcores: vcores,
        };
        (metadata, data)
    }

    /// A two-stage job: a partial `group by` over `partitions` partitions, shuffled to two.
    async fn two_stage_job(partitions: usize) -> HashMap<JobId, JobInfoCache> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = |v: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))]).unwrap()
        };
        let data = (0..partitions as i64)
            .map(|p| vec![batch(vec![p, p + 1])])
            .collect();
        let table = MemTable::try_new(schema.clone(), data).unwrap();
        let config = SessionConfig::new_with_ballista().with_target_partitions(2);
        let ctx = SessionContext::new_with_config(config.clone());
        ctx.register_table("t", Arc::new(table)).unwrap();
        let plan = ctx
            .sql("select k, count(*) from t group by k")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let job = JobId::from("job");
        let graph = StaticExecutionGraph::new(
            "scheduler",
            &job,
            "",
            "session",
            plan,
            0,
            Arc::new(config),
            &mut DefaultDistributedPlanner::new(),
            None,
        )
        .unwrap();
        HashMap::from([(job, JobInfoCache::new(Box::new(graph)))])
    }

    fn graph(jobs: &HashMap<JobId, JobInfoCache>) -> Arc<tokio::sync::RwLock<ExecutionGraphBox>> {
        jobs[&JobId::from("job")].execution_graph.clone()
    }

    /// What the scheduler does with a finished task: its cores back, its status in the graph.
    async fn finish(
        state: &dyn ClusterState,
        jobs: &HashMap<JobId, JobInfoCache>,
        (executor, task): &BoundTask,
        on: &ExecutorMetadata,
    ) {
        state
            .unbind_tasks(vec![(executor.clone(), task.vcores_consumed)])
            .await
            .unwrap();
        let partitions = (0..task.get_output_partition_number())
            .map(|p| ShuffleWritePartition {
                partition_id: p as u64,
                num_batches: 1,
                num_rows: 1,
                num_bytes: 1,
                file_id: None,
                is_sort_shuffle: false,
            })
            .collect();
        let status = TaskStatus {
            task_id: task.key.task_id as u32,
            job_id: task.key.job_id.to_string(),
            stage_id: task.key.stage_id as u32,
            stage_attempt_num: task.stage_attempt_num as u32,
            status: Some(task_status::Status::Successful(SuccessfulTask {
                executor_id: executor.clone(),
                partitions,
                ..Default::default()
            })),
            ..Default::default()
        };
        let graph = graph(jobs);
        let mut graph = graph.write().await;
        graph.update_task_status(on, vec![status], 4, 4).unwrap();
        graph.revive();
    }

    /// Cores bound on `executor` by `tasks`.
    fn cores_on(tasks: &[BoundTask], executor: &str) -> u32 {
        tasks
            .iter()
            .filter(|(e, _)| e == executor)
            .map(|(_, t)| t.vcores_consumed)
            .sum()
    }

    /// Runs the job's first stage on `a`, its second on `b` (which has more cores), then loses
    /// `a`: the second stage is rolled back and `b`'s task of it dropped, as Ballista does when
    /// an executor is lost. Returns the cores the first stage's rerun gets on `b`.
    async fn rerun_cores_after_losing_a(state: &dyn ClusterState) -> u32 {
        let jobs = Arc::new(two_stage_job(2).await);
        graph(&jobs).write().await.revive();
        let (a, a_data) = executor("a", 2);
        state.register_executor(a.clone(), a_data).await.unwrap();
        let bias = TaskDistributionPolicy::Bias;
        let first = state
            .bind_schedulable_tasks(bias.clone(), jobs.clone(), None)
            .await
            .unwrap();
        assert_eq!(cores_on(&first, "a"), 2, "{first:?}");
        for task in &first {
            finish(state, &jobs, task, &a).await;
        }
        let (b, b_data) = executor("b", 3);
        state.register_executor(b, b_data).await.unwrap();
        let second = state
            .bind_schedulable_tasks(bias.clone(), jobs.clone(), None)
            .await
            .unwrap();
        assert_eq!(cores_on(&second, "b"), 2, "{second:?}");
        let (reset, cancelled) = graph(&jobs)
            .write()
            .await
            .reset_stages_on_lost_executor("a")
            .unwrap();
        assert!(!reset.is_empty());
        assert!(!cancelled.is_empty() && cancelled.iter().all(|t| t.executor_id == "b"));
        state.remove_executor("a").await.unwrap();
        graph(&jobs).write().await.revive();
        let rerun = state
            .bind_schedulable_tasks(bias, jobs.clone(), None)
            .await
            .unwrap();
        cores_on(&rerun, "b")
    }

    #[tokio::test]
    async fn the_cores_of_tasks_a_lost_executor_cancelled_come_back() {
        // Ballista's own state keeps the cancelled task's 2 cores: 1 of 3 is left for the rerun.
        assert_eq!(
            rerun_cores_after_losing_a(&InMemoryClusterState::default()).await,
            1
        );
        // Given back, the rerun gets both partitions' cores.
        assert_eq!(rerun_cores_after_losing_a(&HonestCores::default()).await, 2);
    }

    #[tokio::test]
    async fn cores_given_back_never_exceed_those_handed_out() {
        let state = HonestCores::default();
        let (a, a_data) = executor("a", 2);
        state.register_executor(a, a_data).await.unwrap();
        state
            .unbind_tasks(vec![("a".into(), 5), ("gone".into(), 1)])
            .await
            .unwrap();
        let jobs = Arc::new(two_stage_job(8).await);
        graph(&jobs).write().await.revive();
        let tasks = state
            .bind_schedulable_tasks(TaskDistributionPolicy::Bias, jobs, None)
            .await
            .unwrap();
        // Eight partitions wait: the executor has its two cores, not the seven a refund of
        // cores never handed out would make.
        assert_eq!(cores_on(&tasks, "a"), 2);
        assert_eq!(state.bound.lock().unwrap()["a"], 2);
    }
}
