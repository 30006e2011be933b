//! What the load generator sends: scenario steps as JSON-RPC bodies, and a deterministic
//! weighted interleave for `mix`.

use serde_json::{Value, json};

/// Code language of an `execute` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Python.
    Python,
    /// TypeScript.
    TypeScript,
}

impl Language {
    fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::TypeScript => "typescript",
        }
    }
}

/// One kind of request.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `tools/list`.
    ToolsList,
    /// `tools/call` of `execute` (code mode on the run endpoint).
    Execute {
        /// Source.
        code: String,
        /// Language.
        language: Language,
    },
    /// `tools/call` of a named tool (tool mode, or a create tool).
    Tool {
        /// Tool name.
        name: String,
        /// Arguments object.
        args: Value,
    },
}

impl Step {
    /// Short name used in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::ToolsList => "tools-list",
            Step::Execute { .. } => "execute",
            Step::Tool { .. } => "tool",
        }
    }

    /// The JSON-RPC request body with `id`.
    pub fn body(&self, id: u64) -> Vec<u8> {
        let v = match self {
            Step::ToolsList => json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
            Step::Execute { code, language } => json!({
                "jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "execute", "arguments": {"code": code, "language": language.as_str()}}
            }),
            Step::Tool { name, args } => json!({
                "jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": name, "arguments": args}
            }),
        };
        v.to_string().into_bytes()
    }
}

/// Steps with weights; [`Scenario::pick`] interleaves them deterministically.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    steps: Vec<(Step, u32)>,
    total: u64,
    mixed: bool,
}

impl Scenario {
    /// One step only.
    pub fn single(step: Step) -> Scenario {
        Scenario {
            steps: vec![(step, 1)],
            total: 1,
            mixed: false,
        }
    }

    /// Weighted steps; `None` when the weights add up to zero.
    pub fn mix(steps: Vec<(Step, u32)>) -> Option<Scenario> {
        let total: u64 = steps.iter().map(|(_, w)| u64::from(*w)).sum();
        (total > 0).then_some(Scenario {
            steps,
            total,
            mixed: true,
        })
    }

    /// The steps and weights.
    pub fn steps(&self) -> &[(Step, u32)] {
        &self.steps
    }

    /// `tools-list` or `mix(tools-list=3,tool=1)`.
    pub fn label(&self) -> String {
        if !self.mixed {
            return self.steps[0].0.kind().to_owned();
        }
        let parts: Vec<String> = self
            .steps
            .iter()
            .map(|(s, w)| format!("{}={w}", s.kind()))
            .collect();
        format!("mix({})", parts.join(","))
    }

    /// The index of the step for request number `ticket`: each block of `total` tickets
    /// holds every step exactly `weight` times.
    pub fn pick(&self, ticket: u64) -> usize {
        let mut slot = ticket % self.total;
        for (i, (_, w)) in self.steps.iter().enumerate() {
            let w = u64::from(*w);
            if slot < w {
                return i;
            }
            slot -= w;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_rpc() {
        let v: Value = serde_json::from_slice(&Step::ToolsList.body(7)).expect("json");
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
        );
        let s = Step::Execute {
            code: "result = 1".into(),
            language: Language::Python,
        };
        let v: Value = serde_json::from_slice(&s.body(1)).expect("json");
        assert_eq!(v["params"]["name"], "execute");
        assert_eq!(v["params"]["arguments"]["language"], "python");
    }

    #[test]
    fn mix_respects_weights() {
        let m = Scenario::mix(vec![
            (Step::ToolsList, 3),
            (
                Step::Tool {
                    name: "t".into(),
                    args: json!({}),
                },
                1,
            ),
        ])
        .expect("mix");
        let picks: Vec<usize> = (0..8).map(|t| m.pick(t)).collect();
        assert_eq!(picks, [0, 0, 0, 1, 0, 0, 0, 1]);
        assert!(Scenario::mix(vec![(Step::ToolsList, 0)]).is_none());
    }
}
