//! Custom Python in workflows: the switch, and the sandbox the server reports.

use super::*;

/// The sandbox as `/info` reports it, in evidence's words.
pub(in crate::checklist) fn sandbox_text(sandbox: &PythonSandbox) -> String {
    let missing = sandbox.missing.join(", ");
    format!(
        "in force: {}; missing: {}",
        sandbox.layers.join(", "),
        if missing.is_empty() { "nothing" } else { &missing }
    )
}

pub(in crate::checklist) fn custom_python(
    reported: Option<bool>,
    sandbox: Option<String>,
    settings: &Settings,
) -> Item {
    let (allowed, source) = match reported {
        Some(allowed) => (allowed, "GET /info custom_python"),
        None => (
            settings.workflows.allow_custom_python,
            "settings workflows.allow_custom_python",
        ),
    };
    let mut found = vec![evidence(source, allowed.to_string())];
    if let Some(layers) = sandbox {
        found.push(evidence("GET /info python_sandbox", layers));
    }
    if allowed {
        item(
            ItemId::WorkflowsCustomPython,
            Status::Fail,
            "workflows may run custom Python on this computer",
            found,
            set("workflows.allow_custom_python", "false"),
        )
    } else {
        item(
            ItemId::WorkflowsCustomPython,
            Status::Pass,
            "python steps are refused",
            found,
            None,
        )
    }
}

/// Judged only while python steps are allowed: otherwise no step runs in the sandbox at all.
pub(in crate::checklist) fn sandbox(info: &ServerInfo) -> Option<Item> {
    if info.custom_python != Some(true) {
        return None;
    }
    let reported = info.python_sandbox.clone().unwrap_or_default();
    let found = vec![evidence("GET /info python_sandbox", sandbox_text(&reported))];
    let missing = reported.missing.join(", ");
    Some(if reported.missing.is_empty() {
        item(
            ItemId::WorkflowsSandbox,
            Status::Pass,
            "every layer of the sandbox is in force",
            found,
            None,
        )
    } else if reported.weaker_accepted {
        item(
            ItemId::WorkflowsSandbox,
            Status::Fail,
            format!("python steps run without {missing}: a weaker sandbox was accepted"),
            found,
            set("workflows.allow_weaker_sandbox", "false"),
        )
    } else {
        item(
            ItemId::WorkflowsSandbox,
            Status::Warn,
            format!("this system lacks {missing}, so python steps are refused"),
            found,
            None,
        )
    })
}
