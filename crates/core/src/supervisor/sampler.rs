//! What the supervisor watches while the child runs: chart points from its CPU, memory and
//! `/metrics`, and the checklist run on a timer so the state can say when a control fails.

use super::*;

/// Turns the child's CPU and memory and two successive `/metrics` scrapes into chart points.
pub(super) struct Sampler {
    pid: Option<sysinfo::Pid>,
    /// `None` where the OS gives no process information; the charts then lack CPU and memory.
    system: Option<sysinfo::System>,
    previous: Option<(Instant, scrape::Scrape)>,
}

impl Sampler {
    pub(super) fn new(pid: Option<u32>) -> Sampler {
        Sampler {
            pid: pid.map(sysinfo::Pid::from_u32),
            system: sysinfo::System::new().ok(),
            previous: None,
        }
    }

    pub(super) async fn sample(&mut self, prober: &Prober, shared: &Shared) -> Option<Sample> {
        let pid = self.pid?;
        let (cpu_percent, memory_bytes) = match &mut self.system {
            Some(system) => {
                system.refresh_processes_specifics(
                    sysinfo::ProcessesToUpdate::Some(&[pid]),
                    true,
                    sysinfo::ProcessRefreshKind::nothing().with_cpu().with_memory(),
                );
                system
                    .process(pid)
                    .map(|p| (p.cpu_usage(), p.memory()))
                    .unwrap_or_default()
            }
            None => (0.0, 0),
        };
        let _between_checklist_runs = shared.probing.lock().await;
        let now = Instant::now();
        // Beyond loopback `/metrics` needs a key; the charts then show CPU and memory only.
        let current = scrape_metrics(prober).await.map(|scraped| {
            let own = shared
                .own_traffic
                .lock()
                .ok()
                .and_then(|own| (own.0 == Some(pid.as_u32())).then(|| own.1.clone()));
            match own {
                Some(own) => scraped.minus(&own),
                None => scraped,
            }
        });
        let mut sample = Sample {
            at: OffsetDateTime::now_utc(),
            cpu_percent,
            memory_bytes,
            requests_per_second: 0.0,
            errors_per_second: 0.0,
            auth_failures_per_second: 0.0,
            p50_ms: None,
            p99_ms: None,
        };
        if let (Some(current), Some((then, before))) = (&current, &self.previous) {
            let seconds = now.duration_since(*then).as_secs_f64().max(1e-3);
            // The scrape itself is one request; leave it out of the rate.
            sample.requests_per_second = ((current.requests - before.requests - 1.0).max(0.0)) / seconds;
            sample.errors_per_second = (current.server_errors - before.server_errors).max(0.0) / seconds;
            sample.auth_failures_per_second =
                (current.auth_failures - before.auth_failures).max(0.0) / seconds;
            // With no caller, the only request in the histogram is the previous scrape: no latency
            // to chart.
            if sample.requests_per_second > 0.0 {
                sample.p50_ms = scrape::latency_quantile(before, current, 0.5);
                sample.p99_ms = scrape::latency_quantile(before, current, 0.99);
            }
        }
        if let Some(current) = current {
            self.previous = Some((now, current));
        }
        Some(sample)
    }
}

/// Runs the checklist once against the supervised server (settings as the file and the
/// environment give them) and marks the server degraded while an item fails.
pub async fn check_once(
    supervisor: &Supervisor,
    paths: &crate::paths::Paths,
) -> Option<crate::checklist::Report> {
    use crate::checklist::{self, Status as CheckStatus};
    let url = supervisor.status().url?;
    let mut settings = crate::Settings::load(&paths.settings_file()).unwrap_or_default();
    // A bad variable is the server's start error to report; the checklist judges the rest.
    let _ = settings.apply_environment(|name| std::env::var(name).ok());
    // The probes' own requests are counted before and after, and kept out of the charts (a
    // caller's request that lands in those few milliseconds is left out with them).
    let metrics = Prober::new(
        Endpoint::parse(&url).ok()?,
        checklist::local_identity(paths),
        Duration::from_secs(2),
    );
    let probing = supervisor.shared.probing.lock().await;
    let before = scrape_metrics(&metrics).await;
    // Boxed: the joined probes make a future too large for a debug build's worker stack.
    let report = Box::pin(checklist::check_gatehouse(
        &url,
        paths,
        &settings,
        checklist::Options::default(),
    ))
    .await;
    if let (Some(before), Some(mut after)) = (before, scrape_metrics(&metrics).await) {
        // The second scrape is counted once it has answered.
        after.requests += 1.0;
        let pid = supervisor.status().pid;
        if let Ok(mut own) = supervisor.shared.own_traffic.lock() {
            if own.0 != pid {
                *own = (pid, scrape::Scrape::default());
            }
            own.1.add(&after.minus(&before));
        }
    }
    drop(probing);
    let failing: Vec<&str> = report
        .items
        .iter()
        .filter(|i| i.status == CheckStatus::Fail)
        .map(|i| i.id.as_str())
        .collect();
    supervisor.set_checklist_failing(
        (!failing.is_empty()).then(|| format!("checklist items failing: {}", failing.join(", "))),
    );
    Some(report)
}

/// The server's counters from `/metrics`, when it answers them.
pub(super) async fn scrape_metrics(prober: &Prober) -> Option<scrape::Scrape> {
    match prober
        .request("GET", crate::wire::routes::METRICS, &[], &[])
        .await
    {
        Ok(response) if response.status == 200 => Some(scrape::parse(&response.text())),
        _ => None,
    }
}

/// Runs [`check_once`] whenever the server becomes ready and every `interval` after, handing
/// each report to `publish`; ends when the supervisor does.
pub async fn keep_checked(
    supervisor: Supervisor,
    paths: crate::paths::Paths,
    interval: Duration,
    mut publish: impl FnMut(crate::checklist::Report) + Send,
) {
    let mut status = supervisor.watch();
    loop {
        let current = status.borrow_and_update().clone();
        if matches!(current.state, State::Ready | State::Degraded) && current.url.is_some() {
            if let Some(report) = check_once(&supervisor, &paths).await {
                publish(report);
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                changed = status.changed() => if changed.is_err() { return },
            }
        } else if status.changed().await.is_err() {
            return;
        }
    }
}
