//! The NLB's own view of its targets (`status`, #13.9): the load balancer's state, then per
//! listener the target group it forwards to and each target's health as ELBv2 reports it
//! (DescribeTargetHealth), with instance IDs named by the nodes they are (the journal).

use acura_ha_api::model::{Kind, LbHealth, ListenerHealth, Recorded, TargetHealth};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, LbKind};
use aws_sdk_elasticloadbalancingv2::types::{Action, TargetHealthStateEnum};

use crate::Clients;
use crate::error;

/// What the journal knows that the health needs: the NLB's ARN, and the nodes by instance ID.
pub(crate) struct Known {
    lb_arn: Option<String>,
    /// (instance ID, node name).
    nodes: Vec<(String, String)>,
}

impl Known {
    pub(crate) fn from_records(recorded: &[Recorded]) -> Known {
        Known {
            lb_arn: recorded
                .iter()
                .find(|r| r.address == "load_balancer")
                .and_then(|r| r.id.clone()),
            nodes: recorded
                .iter()
                .filter(|r| r.kind == Kind::Instance)
                .filter_map(|r| Some((r.id.clone()?, r.name.clone())))
                .collect(),
        }
    }
}

/// `None` unless the load balancer is the cloud's (an NLB). An NLB the state does not know and
/// the cloud does not have by its name is [`ProviderError::NotKnown`].
pub(crate) async fn lb_health(
    c: &Clients,
    spec: &ClusterSpec,
    known: &Known,
) -> Result<Option<LbHealth>, ProviderError> {
    if spec.load_balancer.kind != LbKind::Cloud {
        return Ok(None);
    }
    let name = format!("{}-nlb", spec.cluster.name);
    let recorded = known.lb_arn.clone();
    let req = c.elb.describe_load_balancers();
    let req = match &recorded {
        Some(arn) => req.load_balancer_arns(arn),
        None => req.names(&name),
    };
    let lbs = match req.into_paginator().items().send().try_collect().await {
        Ok(l) => l,
        Err(e) => {
            let e = error::elb(e);
            if !e.is("LoadBalancerNotFound") {
                return Err(e.into_provider(&format!("load balancer {name}")));
            }
            Vec::new()
        }
    };
    let Some(lb) = lbs.first() else {
        return Err(ProviderError::NotKnown {
            what: format!("load balancer {name}"),
            hint: format!(
                "it does not exist: run {}",
                acura_ha_api::hint::command("up")
            ),
        });
    };
    let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
    let state = lb
        .state()
        .and_then(|s| s.code())
        .map(|s| s.as_str().to_lowercase())
        .unwrap_or_else(|| "unknown".into());
    let listeners = c
        .elb
        .describe_listeners()
        .load_balancer_arn(&arn)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::elb(e).into_provider(&format!("listeners of {name}")))?;
    let nodes = &known.nodes;
    // One DescribeTargetHealth per listener's target group, concurrently.
    let per_listener = listeners.iter().map(|l| async move {
        let port = l.port().unwrap_or(0).clamp(0, i32::from(u16::MAX)) as u16;
        let protocol = l
            .protocol()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let mut targets = Vec::new();
        for tg in forwarded_to(l.default_actions()) {
            let out = c
                .elb
                .describe_target_health()
                .target_group_arn(&tg)
                .send()
                .await
                .map_err(|e| {
                    error::elb(e)
                        .into_provider(&format!("target health of {tg} ({protocol} {port})"))
                })?;
            for d in out.target_health_descriptions() {
                let id = d
                    .target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_string();
                let target = nodes
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, name)| name.clone())
                    .unwrap_or(id);
                let health = d.target_health();
                let state = health
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_lowercase())
                    .unwrap_or_else(|| "unknown".into());
                let reason = health
                    .filter(|h| h.state() != Some(&TargetHealthStateEnum::Healthy))
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string());
                targets.push(TargetHealth {
                    target,
                    state,
                    reason,
                });
            }
        }
        targets.sort_by(|a, b| a.target.cmp(&b.target));
        Ok::<_, ProviderError>(ListenerHealth {
            port,
            protocol,
            targets,
        })
    });
    let mut listeners = futures::future::try_join_all(per_listener).await?;
    listeners.sort_by(|a, b| (a.port, &a.protocol).cmp(&(b.port, &b.protocol)));
    Ok(Some(LbHealth { state, listeners }))
}

/// The target groups a listener's default actions forward to (a plain forward, or a weighted
/// forward config).
fn forwarded_to(actions: &[Action]) -> Vec<String> {
    let mut out = Vec::new();
    for a in actions {
        if let Some(tg) = a.target_group_arn() {
            out.push(tg.to_string());
        }
        for t in a
            .forward_config()
            .map(|f| f.target_groups())
            .unwrap_or_default()
        {
            if let Some(tg) = t.target_group_arn()
                && !out.iter().any(|o| o == tg)
            {
                out.push(tg.to_string());
            }
        }
    }
    out
}
