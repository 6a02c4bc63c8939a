//! `GET /metrics`: the Prometheus text format (version 0.0.4), one registry per host.
//!
//! Where it sits: on the admin side, which serves it. Two kinds of figures:
//! - the [`Instruments`] the stages update as events pass, registered once;
//! - [`HostSample`]: what is read at scrape time from the state that already
//!   exists (a destination's counters, health, violations and queue, the store's
//!   connection), so those figures cost nothing between scrapes.
//!
//! The names are a contract (the book, `operating/metrics.md`): `switchyard_` prefix,
//! `_total` on counters, base units (`_seconds`, `_bytes`).

use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::dispatch::health::Health;
use crate::runtime::Violations;

use crate::observe::metrics::{DestinationLabel, Instruments};

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One destination at scrape time.
#[derive(Debug, Clone)]
pub struct DestinationSample {
    /// Destination name.
    pub name: String,
    /// Its plugin's name.
    pub plugin: String,
    /// Jobs waiting in its queue (the store's last answer).
    pub queued: u64,
    /// Events in its batches in flight on this host.
    pub in_flight: u64,
    /// Dead letters kept.
    pub dead_letters: u64,
    /// Events delivered since the host started.
    pub delivered: u64,
    /// Events scheduled for another attempt.
    pub retried: u64,
    /// Events dead-lettered.
    pub dead_lettered: u64,
    /// Events its filter or an `integrations` object kept from it.
    pub filtered: u64,
    /// Breaker state.
    pub health: Health,
    /// Sandbox violations by kind.
    pub violations: Violations,
    /// Most linear memory one instance has held.
    pub memory_peak_bytes: u64,
    /// Plugin swaps and rollbacks.
    pub swaps: u64,
    /// Its transformations, in the order they run.
    pub transforms: Vec<TransformSample>,
    /// Its concurrency limit, the round trips it follows, and its changes.
    pub concurrency: crate::dispatch::concurrency::LimitReport,
}

/// One transformation of one destination at scrape time.
#[derive(Debug, Clone)]
pub struct TransformSample {
    /// The transformation's name.
    pub name: String,
    /// Events it dropped.
    pub filtered: u64,
    /// Its sandbox violations by kind.
    pub violations: Violations,
}

/// The host at scrape time.
#[derive(Debug, Clone, Default)]
pub struct HostSample {
    /// Every destination, in config order.
    pub destinations: Vec<DestinationSample>,
    /// Whether `/readyz` would answer 200.
    pub ready: bool,
    /// On NATS: whether the client is connected.
    pub nats_connected: Option<bool>,
    /// Instances kept warm between batches now (each holds a pool slot and
    /// the memory its guest touched).
    pub warm_instances: usize,
    /// Subjects suppressed by privacy regulations, in force on this host (a
    /// subject suppressed in two sources counts twice).
    pub suppressed_subjects: usize,
    /// The store's disk use, where it knows it (the embedded store).
    pub disk: Option<crate::store::DiskUsage>,
}

/// The registry of one host.
#[derive(Debug)]
pub struct Metrics {
    /// The instruments, registered once.
    registry: Registry,
    /// Handles for the stages.
    pub instruments: Instruments,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(Instruments::default())
    }
}

impl Metrics {
    /// A registry of `instruments` (whose clones the stages hold).
    pub fn new(instruments: Instruments) -> Metrics {
        let mut registry = Registry::with_prefix("switchyard");
        let i = &instruments;
        registry.register(
            "ingest_requests",
            "Ingest requests by source and HTTP status",
            i.ingest_requests.clone(),
        );
        registry.register(
            "events_accepted",
            "Events stored, per source",
            i.events_accepted.clone(),
        );
        registry.register(
            "events_rejected",
            "Events refused at ingest, per source",
            i.events_rejected.clone(),
        );
        registry.register(
            "events_deduplicated",
            "Events acknowledged but not stored again (messageId seen within the dedup window), per source",
            i.events_deduplicated.clone(),
        );
        registry.register(
            "events_suppressed",
            "Events accepted and dropped before the store because their user is suppressed (a privacy regulation), per source",
            i.events_suppressed.clone(),
        );
        registry.register_with_unit(
            "store_commit_duration",
            "Duration of one store commit of appended events",
            Unit::Seconds,
            i.commits.duration.clone(),
        );
        registry.register(
            "store_commit_events",
            "Events appended per store commit",
            i.commits.events.clone(),
        );
        registry.register_with_unit(
            "delivery_latency",
            "From receipt at ingest to delivery, per destination",
            Unit::Seconds,
            i.delivery_latency.clone(),
        );
        registry.register_with_unit(
            "plugin_call_duration",
            "One deliver call into a destination's component",
            Unit::Seconds,
            i.plugin_call.clone(),
        );
        Metrics {
            registry,
            instruments,
        }
    }

    /// The whole exposition: the instruments, then `sample`.
    pub fn render(&self, sample: HostSample) -> String {
        let mut text = String::new();
        let mut live = Registry::default();
        live.register_collector(Box::new(SampleCollector(sample)));
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &live);
        if !text.ends_with('\n') {
            let _ = writeln!(text);
        }
        text
    }
}

/// Encodes a [`HostSample`].
#[derive(Debug)]
struct SampleCollector(HostSample);

/// Label set: a destination and one more label.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct DestinationAnd {
    destination: String,
    other: Other,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum Other {
    State(&'static str),
    Kind(&'static str),
    Plugin(String),
    Transform(String),
    TransformKind(String, &'static str),
}

impl EncodeLabelSet for DestinationAnd {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel as _;
        ("destination", self.destination.as_str()).encode(encoder.encode_label())?;
        let (key, value) = match &self.other {
            Other::State(v) => ("state", *v),
            Other::Kind(v) => ("kind", *v),
            Other::Plugin(v) => ("plugin", v.as_str()),
            Other::Transform(t) => ("transform", t.as_str()),
            Other::TransformKind(t, kind) => {
                ("transform", t.as_str()).encode(encoder.encode_label())?;
                ("kind", *kind)
            }
        };
        (key, value).encode(encoder.encode_label())
    }
}

impl SampleCollector {
    /// One metric with one sample per destination.
    fn per_destination(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        counter: bool,
        value: impl Fn(&DestinationSample) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let kind = if counter {
            MetricType::Counter
        } else {
            MetricType::Gauge
        };
        let mut family = encoder.encode_descriptor(name, help, unit, kind)?;
        for d in &self.0.destinations {
            let labels = DestinationLabel {
                destination: d.name.clone(),
            };
            let sample = family.encode_family(&labels)?;
            if counter {
                ConstCounter::new(value(d)).encode(sample)?;
            } else {
                ConstGauge::new(i64::try_from(value(d)).unwrap_or(i64::MAX)).encode(sample)?;
            }
        }
        Ok(())
    }

    /// One metric with a sample per destination and value of another label.
    fn per_destination_and(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        counter: bool,
        samples: impl Fn(&DestinationSample) -> Vec<(Other, u64)>,
    ) -> Result<(), std::fmt::Error> {
        let kind = if counter {
            MetricType::Counter
        } else {
            MetricType::Gauge
        };
        let mut family = encoder.encode_descriptor(name, help, None, kind)?;
        for d in &self.0.destinations {
            for (other, v) in samples(d) {
                let labels = DestinationAnd {
                    destination: d.name.clone(),
                    other,
                };
                let sample = family.encode_family(&labels)?;
                if counter {
                    ConstCounter::new(v).encode(sample)?;
                } else {
                    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(sample)?;
                }
            }
        }
        Ok(())
    }
}

impl Collector for SampleCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        self.per_destination(
            e,
            "switchyard_destination_queued",
            "Jobs waiting in the destination's queue",
            None,
            false,
            |d| d.queued,
        )?;
        self.per_destination(
            e,
            "switchyard_destination_in_flight",
            "Events in the destination's batches in flight on this host",
            None,
            false,
            |d| d.in_flight,
        )?;
        self.per_destination(
            e,
            "switchyard_destination_dead_letters",
            "Dead letters kept for the destination",
            None,
            false,
            |d| d.dead_letters,
        )?;
        self.per_destination(
            e,
            "switchyard_destination_delivered",
            "Events delivered",
            None,
            true,
            |d| d.delivered,
        )?;
        self.per_destination(
            e,
            "switchyard_destination_retried",
            "Events scheduled for another attempt",
            None,
            true,
            |d| d.retried,
        )?;
        self.per_destination(
            e,
            "switchyard_destination_dead_lettered",
            "Events dead-lettered",
            None,
            true,
            |d| d.dead_lettered,
        )?;
        self.per_destination(
            e,
            "switchyard_destination_filtered",
            "Events its filter or the event's integrations object kept from the destination",
            None,
            true,
            |d| d.filtered,
        )?;
        self.per_destination_and(
            e,
            "switchyard_destination_health",
            "1 for the destination's health state (healthy, degraded, paused), 0 for the others",
            false,
            |d| {
                [Health::Healthy, Health::Degraded, Health::Paused]
                    .into_iter()
                    .map(|h| (Other::State(health_name(h)), u64::from(d.health == h)))
                    .collect()
            },
        )?;
        self.per_destination_and(
            e,
            "switchyard_sandbox_violations",
            "Sandbox violations by kind (timeout, trap, contract, egress_denied, log_lines_dropped)",
            true,
            |d| {
                let v = d.violations;
                vec![
                    (Other::Kind("timeout"), v.timeouts),
                    (Other::Kind("trap"), v.traps),
                    (Other::Kind("contract"), v.contract),
                    (Other::Kind("egress_denied"), v.egress_denied),
                    (Other::Kind("log_lines_dropped"), v.log_lines_dropped),
                ]
            },
        )?;
        self.per_destination_and(
            e,
            "switchyard_transform_filtered",
            "Events a transformation dropped before the destination (settled as filtered)",
            true,
            |d| {
                d.transforms
                    .iter()
                    .map(|t| (Other::Transform(t.name.clone()), t.filtered))
                    .collect()
            },
        )?;
        self.per_destination_and(
            e,
            "switchyard_transform_violations",
            "Sandbox violations of a transformation serving the destination, by kind",
            true,
            |d| {
                d.transforms
                    .iter()
                    .flat_map(|t| {
                        let v = t.violations;
                        [
                            ("timeout", v.timeouts),
                            ("trap", v.traps),
                            ("contract", v.contract),
                            ("egress_denied", v.egress_denied),
                            ("log_lines_dropped", v.log_lines_dropped),
                        ]
                        .map(|(kind, n)| (Other::TransformKind(t.name.clone(), kind), n))
                    })
                    .collect()
            },
        )?;
        self.per_destination(
            e,
            "switchyard_plugin_memory_peak",
            "Most linear memory one instance of the destination's component has held",
            Some(&Unit::Bytes),
            false,
            |d| d.memory_peak_bytes,
        )?;
        self.per_destination_and(
            e,
            "switchyard_plugin_swaps",
            "Hot swaps and rollbacks of the destination's plugin since the host started",
            true,
            |d| vec![(Other::Plugin(d.plugin.clone()), d.swaps)],
        )?;
        self.per_destination(
            e,
            "switchyard_destination_concurrency_limit",
            "Batches the destination may have in flight now (fixed, or the adaptive limit)",
            None,
            false,
            |d| u64::from(d.concurrency.limit),
        )?;
        self.per_destination_and(
            e,
            "switchyard_destination_concurrency_changes",
            "Changes of the adaptive limit by kind (raised, raised_slower, lowered, back_pressure)",
            true,
            |d| {
                crate::dispatch::concurrency::CHANGE_KINDS
                    .iter()
                    .zip(d.concurrency.changes)
                    .map(|((kind, _), n)| (Other::Kind(kind), n))
                    .collect()
            },
        )?;
        for (name, help, value) in [
            (
                "switchyard_destination_rtt_reference",
                "The round trip the adaptive limit compares with (the lowest window median of late)",
                (|d: &DestinationSample| d.concurrency.reference_rtt_ms) as fn(&DestinationSample) -> Option<f64>,
            ),
            (
                "switchyard_destination_rtt_deviation",
                "The spread of round trips within a window (the jitter a rise must stand out of)",
                |d: &DestinationSample| d.concurrency.rtt_deviation_ms,
            ),
        ] {
            let mut family =
                e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Gauge)?;
            for d in &self.0.destinations {
                if let Some(ms) = value(d) {
                    let labels = DestinationLabel {
                        destination: d.name.clone(),
                    };
                    ConstGauge::new(ms / 1000.0).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let ready = encoder.encode_descriptor(
            "switchyard_ready",
            "1 when /readyz answers 200",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(self.0.ready)).encode(ready)?;
        if let Some(disk) = self.0.disk {
            for (name, help, v) in [
                (
                    "switchyard_store_disk",
                    "Bytes of the store's files (the database and its write-ahead log)",
                    disk.file_bytes,
                ),
                (
                    "switchyard_store_retained",
                    "Bytes of logged events every destination has passed, kept for [store] retention",
                    disk.retained_bytes,
                ),
            ] {
                let g = encoder.encode_descriptor(name, help, Some(&Unit::Bytes), MetricType::Gauge)?;
                ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(g)?;
            }
        }
        let warm = encoder.encode_descriptor(
            "switchyard_warm_instances",
            "Instances kept warm between batches (each holds a pool slot and its guest's memory)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(self.0.warm_instances).unwrap_or(i64::MAX)).encode(warm)?;
        let suppressed = encoder.encode_descriptor(
            "switchyard_suppressed_subjects",
            "Subjects suppressed by privacy regulations, in force on this host",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(self.0.suppressed_subjects).unwrap_or(i64::MAX))
            .encode(suppressed)?;
        if let Some(connected) = self.0.nats_connected {
            let nats = encoder.encode_descriptor(
                "switchyard_nats_connected",
                "1 while the NATS client is connected",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(connected)).encode(nats)?;
        }
        Ok(())
    }
}

fn health_name(h: Health) -> &'static str {
    match h {
        Health::Healthy => "healthy",
        Health::Degraded => "degraded",
        Health::Paused => "paused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::metrics::RequestLabels;

    #[test]
    fn counters_histograms_and_samples_render_in_the_text_format() {
        let metrics = Metrics::default();
        let i = &metrics.instruments;
        i.ingest_requests
            .get_or_create(&RequestLabels {
                source: "web".into(),
                status: 200,
            })
            .inc_by(3);
        i.latency_of("hook").observe(0.2);
        let text = metrics.render(HostSample {
            destinations: vec![DestinationSample {
                name: "hook".into(),
                plugin: "webhook".into(),
                queued: 7,
                in_flight: 2,
                dead_letters: 1,
                delivered: 40,
                retried: 3,
                dead_lettered: 1,
                filtered: 5,
                health: Health::Degraded,
                violations: Violations {
                    traps: 2,
                    ..Violations::default()
                },
                memory_peak_bytes: 1 << 20,
                swaps: 1,
                concurrency: crate::dispatch::concurrency::LimitReport {
                    mode: "adaptive",
                    limit: 12,
                    max: 16,
                    in_flight: 3,
                    reference_rtt_ms: Some(42.5),
                    rtt_deviation_ms: Some(1.5),
                    last_change: Some("round trips rose: lowered"),
                    changes: [4, 0, 1, 0],
                },
                transforms: vec![TransformSample {
                    name: "mask".into(),
                    filtered: 3,
                    violations: Violations {
                        traps: 2,
                        ..Default::default()
                    },
                }],
            }],
            ready: true,
            nats_connected: None,
            warm_instances: 2,
            suppressed_subjects: 5,
            disk: Some(crate::store::DiskUsage {
                file_bytes: 4096,
                retained_bytes: 100,
            }),
        });
        for line in [
            "switchyard_ingest_requests_total{source=\"web\",status=\"200\"} 3",
            "switchyard_delivery_latency_seconds_count{destination=\"hook\"} 1",
            "switchyard_destination_queued{destination=\"hook\"} 7",
            "switchyard_store_disk_bytes 4096",
            "switchyard_store_retained_bytes 100",
            "switchyard_destination_delivered_total{destination=\"hook\"} 40",
            "switchyard_destination_filtered_total{destination=\"hook\"} 5",
            "switchyard_destination_health{destination=\"hook\",state=\"degraded\"} 1",
            "switchyard_destination_health{destination=\"hook\",state=\"healthy\"} 0",
            "switchyard_sandbox_violations_total{destination=\"hook\",kind=\"trap\"} 2",
            "switchyard_plugin_memory_peak_bytes{destination=\"hook\"} 1048576",
            "switchyard_plugin_swaps_total{destination=\"hook\",plugin=\"webhook\"} 1",
            "switchyard_ready 1",
            "switchyard_warm_instances 2",
            "switchyard_suppressed_subjects 5",
            "switchyard_destination_concurrency_limit{destination=\"hook\"} 12",
            "switchyard_destination_concurrency_changes_total{destination=\"hook\",kind=\"lowered\"} 1",
            "switchyard_destination_rtt_reference_seconds{destination=\"hook\"} 0.0425",
            "switchyard_transform_filtered_total{destination=\"hook\",transform=\"mask\"} 3",
            "switchyard_transform_violations_total{destination=\"hook\",transform=\"mask\",kind=\"trap\"} 2",
            "# TYPE switchyard_destination_delivered_total counter",
        ] {
            assert!(text.contains(line), "{line} is missing from:\n{text}");
        }
        assert!(!text.contains("nats_connected"));
    }
}
