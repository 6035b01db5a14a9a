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
