//! Limits configuration: per-tier monthly quota, execution rate, concurrency and management
//! rate, every key defaulted by a named constant; validated into a [`LimitTable`].
//!
//! In TOML (the edge config's `[limits]` table; every key optional):
//! ```toml
//! [limits]
//! flush_interval_ms = 1000
//! concurrency_retry_after_s = 1
//! [limits.free]
//! monthly_executions = 1000
//! executions_per_minute = 60
//! execution_burst = 10
//! concurrent_executions = 2
//! management_per_minute = 30
//! management_burst = 10
//! ```
//!
//! Environment: `PADDOCK_EDGE_LIMITS_FLUSH_INTERVAL_MS`, `PADDOCK_EDGE_LIMITS_CONCURRENCY_RETRY_AFTER_S`
//! and `PADDOCK_EDGE_LIMITS_<TIER>_<KEY>` (e.g. `PADDOCK_EDGE_LIMITS_FREE_MONTHLY_EXECUTIONS=3`).

use paddock_shared::model::Tier;
use serde::{Deserialize, Serialize};

/// Monthly executions, free tier (anchor facts; also `sandbox-profiles/tiers.toml`).
pub const FREE_MONTHLY_EXECUTIONS: u64 = 1_000;
/// Monthly executions, builder tier.
pub const BUILDER_MONTHLY_EXECUTIONS: u64 = 25_000;
/// Monthly executions, pro tier.
pub const PRO_MONTHLY_EXECUTIONS: u64 = 250_000;
/// Monthly executions, enterprise tier.
pub const ENTERPRISE_MONTHLY_EXECUTIONS: u64 = 1_000_000;

/// Executions per minute (sustained), free tier.
pub const FREE_EXECUTIONS_PER_MINUTE: u32 = 60;
/// Executions per minute, builder tier.
pub const BUILDER_EXECUTIONS_PER_MINUTE: u32 = 300;
/// Executions per minute, pro tier.
pub const PRO_EXECUTIONS_PER_MINUTE: u32 = 1_200;
/// Executions per minute, enterprise tier.
pub const ENTERPRISE_EXECUTIONS_PER_MINUTE: u32 = 6_000;

/// Executions that may arrive at once on a full bucket, free tier.
pub const FREE_EXECUTION_BURST: u32 = 10;
/// Execution burst, builder tier.
pub const BUILDER_EXECUTION_BURST: u32 = 30;
/// Execution burst, pro tier.
pub const PRO_EXECUTION_BURST: u32 = 100;
/// Execution burst, enterprise tier.
pub const ENTERPRISE_EXECUTION_BURST: u32 = 500;

/// Executions in flight per account, free tier.
pub const FREE_CONCURRENT_EXECUTIONS: u32 = 2;
/// Executions in flight, builder tier.
pub const BUILDER_CONCURRENT_EXECUTIONS: u32 = 8;
/// Executions in flight, pro tier.
pub const PRO_CONCURRENT_EXECUTIONS: u32 = 32;
/// Executions in flight, enterprise tier.
pub const ENTERPRISE_CONCURRENT_EXECUTIONS: u32 = 128;

/// Mutating create-tool calls per minute, free tier.
pub const FREE_MANAGEMENT_PER_MINUTE: u32 = 30;
/// Mutating create-tool calls per minute, builder tier.
pub const BUILDER_MANAGEMENT_PER_MINUTE: u32 = 60;
/// Mutating create-tool calls per minute, pro tier.
pub const PRO_MANAGEMENT_PER_MINUTE: u32 = 120;
/// Mutating create-tool calls per minute, enterprise tier.
pub const ENTERPRISE_MANAGEMENT_PER_MINUTE: u32 = 300;

/// Mutating create-tool burst, free tier.
pub const FREE_MANAGEMENT_BURST: u32 = 10;
/// Mutating create-tool burst, builder tier.
pub const BUILDER_MANAGEMENT_BURST: u32 = 20;
/// Mutating create-tool burst, pro tier.
pub const PRO_MANAGEMENT_BURST: u32 = 40;
/// Mutating create-tool burst, enterprise tier.
pub const ENTERPRISE_MANAGEMENT_BURST: u32 = 100;

/// `Retry-After` of a `CONCURRENCY_LIMITED` answer, seconds.
pub const DEFAULT_CONCURRENCY_RETRY_AFTER_S: u64 = 1;
/// How often usage counters are written to sled, milliseconds; a kill -9 loses at most
/// the executions admitted in the last interval (an under-count, never a double count).
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1_000;
/// Largest accepted flush interval (one minute).
pub const MAX_FLUSH_INTERVAL_MS: u64 = 60_000;
/// Largest count the packed counter holds (44 bits).
pub const MAX_MONTHLY_EXECUTIONS: u64 = (1 << 44) - 1;

/// The resolved limits of one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TierLimits {
    pub monthly_executions: u64,
    pub executions_per_minute: u32,
    pub execution_burst: u32,
    pub concurrent_executions: u32,
    pub management_per_minute: u32,
    pub management_burst: u32,
}

impl TierLimits {
    /// The built-in defaults of `tier`.
    pub const fn default_for(tier: Tier) -> TierLimits {
        match tier {
            Tier::Free => TierLimits {
                monthly_executions: FREE_MONTHLY_EXECUTIONS,
                executions_per_minute: FREE_EXECUTIONS_PER_MINUTE,
                execution_burst: FREE_EXECUTION_BURST,
                concurrent_executions: FREE_CONCURRENT_EXECUTIONS,
                management_per_minute: FREE_MANAGEMENT_PER_MINUTE,
                management_burst: FREE_MANAGEMENT_BURST,
            },
            Tier::Builder => TierLimits {
                monthly_executions: BUILDER_MONTHLY_EXECUTIONS,
                executions_per_minute: BUILDER_EXECUTIONS_PER_MINUTE,
                execution_burst: BUILDER_EXECUTION_BURST,
                concurrent_executions: BUILDER_CONCURRENT_EXECUTIONS,
                management_per_minute: BUILDER_MANAGEMENT_PER_MINUTE,
                management_burst: BUILDER_MANAGEMENT_BURST,
            },
            Tier::Pro => TierLimits {
                monthly_executions: PRO_MONTHLY_EXECUTIONS,
                executions_per_minute: PRO_EXECUTIONS_PER_MINUTE,
                execution_burst: PRO_EXECUTION_BURST,
                concurrent_executions: PRO_CONCURRENT_EXECUTIONS,
                management_per_minute: PRO_MANAGEMENT_PER_MINUTE,
                management_burst: PRO_MANAGEMENT_BURST,
            },
            Tier::Enterprise => TierLimits {
                monthly_executions: ENTERPRISE_MONTHLY_EXECUTIONS,
                executions_per_minute: ENTERPRISE_EXECUTIONS_PER_MINUTE,
                execution_burst: ENTERPRISE_EXECUTION_BURST,
                concurrent_executions: ENTERPRISE_CONCURRENT_EXECUTIONS,
                management_per_minute: ENTERPRISE_MANAGEMENT_PER_MINUTE,
                management_burst: ENTERPRISE_MANAGEMENT_BURST,
            },
        }
    }
}

/// Overrides of one tier's limits; a key left out keeps the tier's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierOverrides {
    pub monthly_executions: Option<u64>,
    pub executions_per_minute: Option<u32>,
    pub execution_burst: Option<u32>,
    pub concurrent_executions: Option<u32>,
    pub management_per_minute: Option<u32>,
    pub management_burst: Option<u32>,
}

/// The `[limits]` configuration table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub free: TierOverrides,
    pub builder: TierOverrides,
    pub pro: TierOverrides,
    pub enterprise: TierOverrides,
    /// `Retry-After` of `CONCURRENCY_LIMITED`, seconds.
    pub concurrency_retry_after_s: u64,
    /// Usage counter flush interval, milliseconds (the kill -9 loss bound).
    pub flush_interval_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            free: TierOverrides::default(),
            builder: TierOverrides::default(),
            pro: TierOverrides::default(),
            enterprise: TierOverrides::default(),
            concurrency_retry_after_s: DEFAULT_CONCURRENCY_RETRY_AFTER_S,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
        }
    }
}

/// The validated limits the [`super::Limiter`] runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitTable {
    /// Indexed by [`tier_index`].
    pub tiers: [TierLimits; 4],
    pub concurrency_retry_after_s: u64,
}

impl Default for LimitTable {
    fn default() -> Self {
        LimitTable {
            tiers: Tier::ALL.map(TierLimits::default_for),
            concurrency_retry_after_s: DEFAULT_CONCURRENCY_RETRY_AFTER_S,
        }
    }
}

impl LimitTable {
    /// The limits of `tier`.
    pub fn tier(&self, tier: Tier) -> &TierLimits {
        &self.tiers[tier_index(tier)]
    }

    /// Changes one tier (tests, admin tools).
    pub fn with_tier(mut self, tier: Tier, limits: TierLimits) -> LimitTable {
        self.tiers[tier_index(tier)] = limits;
        self
    }
}

/// Position of `tier` in [`Tier::ALL`].
pub fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Free => 0,
        Tier::Builder => 1,
        Tier::Pro => 2,
        Tier::Enterprise => 3,
    }
}

impl LimitsConfig {
    fn overrides(&self, tier: Tier) -> &TierOverrides {
        match tier {
            Tier::Free => &self.free,
            Tier::Builder => &self.builder,
            Tier::Pro => &self.pro,
            Tier::Enterprise => &self.enterprise,
        }
    }

    fn overrides_mut(&mut self, tier: Tier) -> &mut TierOverrides {
        match tier {
            Tier::Free => &mut self.free,
            Tier::Builder => &mut self.builder,
            Tier::Pro => &mut self.pro,
            Tier::Enterprise => &mut self.enterprise,
        }
    }

    /// Sets one key from the environment: `key` is what follows `limits_` in
    /// `PADDOCK_EDGE_LIMITS_<KEY>`, lower-case: `flush_interval_ms`,
    /// `concurrency_retry_after_s`, or `<tier>_<tier key>` (e.g. `free_monthly_executions`).
    ///
    /// # Errors
    /// What is wrong (unknown key, not a whole number), for the config's problem list.
    pub fn set_env(&mut self, key: &str, value: &str) -> Result<(), String> {
        let num = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{v:?} is not a whole number"))
        };
        let small = |v: &str| {
            num(v).and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is too large")))
        };
        match key {
            "flush_interval_ms" => self.flush_interval_ms = num(value)?,
            "concurrency_retry_after_s" => self.concurrency_retry_after_s = num(value)?,
            _ => {
                let (tier, field) = Tier::ALL
                    .iter()
                    .find_map(|t| {
                        key.strip_prefix(t.as_str())
                            .and_then(|r| r.strip_prefix('_'))
                            .map(|r| (*t, r))
                    })
                    .ok_or_else(|| {
                        format!(
                            "unknown limits key `{key}` (use flush_interval_ms, concurrency_retry_after_s or <tier>_<key> with tier free, builder, pro or enterprise)"
                        )
                    })?;
                let o = self.overrides_mut(tier);
                match field {
                    "monthly_executions" => o.monthly_executions = Some(num(value)?),
                    "executions_per_minute" => o.executions_per_minute = Some(small(value)?),
                    "execution_burst" => o.execution_burst = Some(small(value)?),
                    "concurrent_executions" => o.concurrent_executions = Some(small(value)?),
                    "management_per_minute" => o.management_per_minute = Some(small(value)?),
                    "management_burst" => o.management_burst = Some(small(value)?),
                    _ => {
                        return Err(format!(
                            "unknown limits key `{field}` of tier {tier} (use monthly_executions, executions_per_minute, execution_burst, concurrent_executions, management_per_minute or management_burst)"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The flush interval.
    pub fn flush_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.flush_interval_ms)
    }

    /// Applies the overrides to the defaults and validates the result.
    ///
    /// # Errors
    /// Every problem at once, each naming its key (`limits.free.execution_burst: …`).
    pub fn table(&self) -> Result<LimitTable, Vec<String>> {
        let mut problems = Vec::new();
        let mut table = LimitTable {
            concurrency_retry_after_s: self.concurrency_retry_after_s,
            ..LimitTable::default()
        };
        for tier in Tier::ALL {
            let o = self.overrides(tier);
            let d = TierLimits::default_for(tier);
            let t = TierLimits {
                monthly_executions: o.monthly_executions.unwrap_or(d.monthly_executions),
                executions_per_minute: o.executions_per_minute.unwrap_or(d.executions_per_minute),
                execution_burst: o.execution_burst.unwrap_or(d.execution_burst),
                concurrent_executions: o.concurrent_executions.unwrap_or(d.concurrent_executions),
                management_per_minute: o.management_per_minute.unwrap_or(d.management_per_minute),
                management_burst: o.management_burst.unwrap_or(d.management_burst),
            };
            if t.monthly_executions > MAX_MONTHLY_EXECUTIONS {
                problems.push(format!(
                    "limits.{tier}.monthly_executions: {} is over the maximum {MAX_MONTHLY_EXECUTIONS}",
                    t.monthly_executions
                ));
            }
            for (key, v) in [
                ("executions_per_minute", t.executions_per_minute),
                ("execution_burst", t.execution_burst),
                ("concurrent_executions", t.concurrent_executions),
                ("management_per_minute", t.management_per_minute),
                ("management_burst", t.management_burst),
            ] {
                if v == 0 || v > 1_000_000 {
                    problems.push(format!(
                        "limits.{tier}.{key}: {v} is out of range (1 to 1000000)"
                    ));
                }
            }
            table.tiers[tier_index(tier)] = t;
        }
        if self.concurrency_retry_after_s == 0 || self.concurrency_retry_after_s > 3600 {
            problems.push(format!(
                "limits.concurrency_retry_after_s: {} is out of range (1 to 3600)",
                self.concurrency_retry_after_s
            ));
        }
        if self.flush_interval_ms == 0 || self.flush_interval_ms > MAX_FLUSH_INTERVAL_MS {
            problems.push(format!(
                "limits.flush_interval_ms: {} is out of range (1 to {MAX_FLUSH_INTERVAL_MS})",
                self.flush_interval_ms
            ));
        }
        if problems.is_empty() {
            Ok(table)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_anchor_table() {
        let t = LimitsConfig::default().table().expect("defaults are valid");
        let monthly: Vec<u64> = Tier::ALL
            .iter()
            .map(|&x| t.tier(x).monthly_executions)
            .collect();
        assert_eq!(monthly, [1_000, 25_000, 250_000, 1_000_000]);
        assert_eq!(t.tier(Tier::Free).concurrent_executions, 2);
        assert_eq!(t.tier(Tier::Enterprise).executions_per_minute, 6_000);
    }

    #[test]
    fn defaults_agree_with_the_sandbox_profiles() {
        let text = include_str!("../../../sandbox-profiles/tiers.toml");
        let v: toml::Value = toml::from_str(text).expect("tiers.toml parses");
        for tier in Tier::ALL {
            let m = v["tiers"][tier.as_str()]["monthly_executions"]
                .as_integer()
                .expect("monthly_executions");
            assert_eq!(
                u64::try_from(m).ok(),
                Some(TierLimits::default_for(tier).monthly_executions),
                "{tier}"
            );
        }
    }

    #[test]
    fn partial_overrides_keep_the_other_defaults() {
        let c: LimitsConfig = toml::from_str(
            "flush_interval_ms = 250\n[free]\nmonthly_executions = 5\n[pro]\nexecution_burst = 7\n",
        )
        .expect("parses");
        let t = c.table().expect("valid");
        assert_eq!(t.tier(Tier::Free).monthly_executions, 5);
        assert_eq!(
            t.tier(Tier::Free).executions_per_minute,
            FREE_EXECUTIONS_PER_MINUTE
        );
        assert_eq!(t.tier(Tier::Pro).execution_burst, 7);
        assert_eq!(c.flush_interval().as_millis(), 250);
    }

    #[test]
    fn env_keys_set_tiers_and_globals() {
        let mut c = LimitsConfig::default();
        c.set_env("free_monthly_executions", "3").expect("set");
        c.set_env("enterprise_concurrent_executions", " 7 ")
            .expect("set");
        c.set_env("flush_interval_ms", "200").expect("set");
        let t = c.table().expect("valid");
        assert_eq!(t.tier(Tier::Free).monthly_executions, 3);
        assert_eq!(t.tier(Tier::Enterprise).concurrent_executions, 7);
        assert_eq!(c.flush_interval_ms, 200);
        assert!(
            c.set_env("free_monthly", "3")
                .unwrap_err()
                .contains("monthly")
        );
        assert!(c.set_env("gold_monthly_executions", "3").is_err());
        assert!(
            c.set_env("pro_execution_burst", "x")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(c.set_env("pro_execution_burst", "5000000000").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<LimitsConfig>("[free]\nmonthly = 5\n").is_err());
        assert!(toml::from_str::<LimitsConfig>("flush_every = 5\n").is_err());
    }

    #[test]
    fn every_problem_is_reported_naming_its_key() {
        let c: LimitsConfig = toml::from_str(
            "flush_interval_ms = 0\nconcurrency_retry_after_s = 0\n[builder]\nexecution_burst = 0\nconcurrent_executions = 0\n",
        )
        .expect("parses");
        let problems = c.table().expect_err("invalid");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("limits.builder.execution_burst: 0"));
        assert!(problems[1].starts_with("limits.builder.concurrent_executions: 0"));
        assert!(problems[2].starts_with("limits.concurrency_retry_after_s"));
        assert!(problems[3].starts_with("limits.flush_interval_ms"));
    }
}
