//! What `init` reads from the CLIs' own files: the aws CLI's profile names and the chosen
//! profile's `region` (`~/.aws/config`, `~/.aws/credentials`), and the cloud names of
//! `clouds.yaml`. Only section names and the one `region` key are read: no key, secret or
//! password is kept, so none can reach the written file.

use std::path::{Path, PathBuf};

use super::Env;

/// The aws CLI's profile as `init` resolved it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Aws {
    /// The profile to write, and why it was chosen.
    pub profile: Option<(String, String)>,
    /// Every other profile of the aws CLI's files, in file order.
    pub others: Vec<String>,
    /// The region, and where it came from.
    pub region: Option<(String, String)>,
    /// The files read, for the comments.
    pub looked: Vec<PathBuf>,
}

/// One `[section]` of an INI file the aws CLI reads: its profile name and its `region`.
#[derive(Debug, PartialEq, Eq)]
struct Profile {
    name: String,
    region: Option<String>,
}

/// The profiles of an aws CLI file. In `config` a profile is `[default]` or `[profile NAME]`
/// (other sections, `[sso-session X]`, `[services X]`, are not profiles); in `credentials` every
/// section is a profile. Only top-level `region = …` lines are kept: indented lines are nested
/// settings (`s3 =` then `  region = …`) or continuations, as the aws CLI's parser reads them.
fn profiles(text: &str, is_config: bool) -> Vec<Profile> {
    let mut out: Vec<Profile> = Vec::new();
    let mut current: Option<usize> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let inner = inner.trim();
            let name = if !is_config {
                Some(inner)
            } else if inner == "default" {
                Some("default")
            } else {
                inner
                    .strip_prefix("profile")
                    .filter(|rest| rest.starts_with(char::is_whitespace))
                    .map(str::trim)
            };
            current = match name.filter(|n| !n.is_empty()) {
                Some(n) => match out.iter().position(|p| p.name == n) {
                    Some(i) => Some(i),
                    None => {
                        out.push(Profile {
                            name: n.to_string(),
                            region: None,
                        });
                        Some(out.len() - 1)
                    }
                },
                None => None,
            };
            continue;
        }
        if raw.starts_with(char::is_whitespace) {
            continue;
        }
        if let Some(i) = current
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "region"
            && !v.trim().is_empty()
        {
            out[i].region = Some(v.trim().to_string());
        }
    }
    out
}

/// The profile and region as the aws CLI would resolve them: `AWS_PROFILE` (or the older
/// `AWS_DEFAULT_PROFILE`), else `default` when a file has it, else the only profile; the region
/// from `AWS_REGION`, `AWS_DEFAULT_REGION`, then the chosen profile's `region`.
pub fn aws(env: &Env) -> Aws {
    let config = env
        .aws_config_file
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".aws/config")));
    let credentials = env
        .aws_credentials_file
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".aws/credentials")));
    let mut found: Vec<(Profile, PathBuf)> = Vec::new();
    let mut looked = Vec::new();
    for (path, is_config) in [(config, true), (credentials, false)] {
        let Some(path) = path else { continue };
        let text = std::fs::read_to_string(&path).ok();
        looked.push(path.clone());
        for p in profiles(text.as_deref().unwrap_or(""), is_config) {
            match found.iter_mut().find(|(f, _)| f.name == p.name) {
                // The config file's region wins; the credentials file only fills a gap.
                Some((f, _)) => {
                    if f.region.is_none() {
                        f.region = p.region;
                    }
                }
                None => found.push((p, path.clone())),
            }
        }
    }
    let files = || {
        looked
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let profile: Option<(String, String)> = if let Some(p) = &env.aws_profile {
        let why = if found.iter().any(|(f, _)| &f.name == p) {
            "AWS_PROFILE".to_string()
        } else {
            format!("AWS_PROFILE; it is not a profile of {}", files())
        };
        Some((p.clone(), why))
    } else if let Some((_, path)) = found.iter().find(|(f, _)| f.name == "default") {
        Some((
            "default".into(),
            format!("the [default] profile of {}", path.display()),
        ))
    } else if let [(only, path)] = found.as_slice() {
        Some((
            only.name.clone(),
            format!("the only profile, in {}", path.display()),
        ))
    } else {
        None
    };
    let chosen = profile.as_ref().map(|(p, _)| p.as_str());
    let region = if let Some(r) = &env.aws_region {
        Some((r.clone(), env.aws_region_var.to_string()))
    } else {
        found
            .iter()
            .find(|(f, _)| Some(f.name.as_str()) == chosen)
            .and_then(|(f, path)| {
                let r = f.region.clone()?;
                Some((r, format!("profile {:?} in {}", f.name, path.display())))
            })
    };
    Aws {
        others: found
            .iter()
            .map(|(f, _)| f.name.clone())
            .filter(|n| Some(n.as_str()) != chosen)
            .collect(),
        profile,
        region,
        looked,
    }
}

/// The OpenStack cloud as `init` resolved it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Clouds {
    /// The cloud to write, and why it was chosen.
    pub cloud: Option<(String, String)>,
    /// The other clouds of the `clouds.yaml` read.
    pub others: Vec<String>,
    /// The `clouds.yaml` read, if any; else where it was looked for.
    pub file: Option<PathBuf>,
    pub looked: Vec<PathBuf>,
}

/// Where the openstack CLI looks for `clouds.yaml`, first found wins.
fn clouds_yaml_places(env: &Env) -> Vec<PathBuf> {
    let mut places = Vec::new();
    if let Some(p) = &env.os_client_config_file {
        places.push(p.clone());
    }
    places.push(env.cwd.join("clouds.yaml"));
    if let Some(h) = &env.home {
        places.push(h.join(".config/openstack/clouds.yaml"));
    }
    places.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    places
}

/// `OS_CLOUD`, else the only (or first) cloud of the first `clouds.yaml` found where the
/// openstack CLI looks.
pub fn clouds(env: &Env) -> Clouds {
    let looked = clouds_yaml_places(env);
    let file = looked.iter().find(|p| p.is_file()).cloned();
    let names = file
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| cloud_names(&t))
        .unwrap_or_default();
    let shown = |p: &Path| p.display().to_string();
    let cloud = match (&env.os_cloud, &file) {
        (Some(c), Some(f)) if names.contains(c) => {
            Some((c.clone(), format!("OS_CLOUD, in {}", shown(f))))
        }
        (Some(c), Some(f)) => Some((
            c.clone(),
            format!("OS_CLOUD; it is not a cloud of {}", shown(f)),
        )),
        (Some(c), None) => Some((c.clone(), "OS_CLOUD; no clouds.yaml found".into())),
        (None, Some(f)) => names.first().map(|c| {
            let which = if names.len() == 1 {
                "the only"
            } else {
                "the first"
            };
            (c.clone(), format!("{which} cloud of {}", shown(f)))
        }),
        (None, None) => None,
    };
    let chosen = cloud.as_ref().map(|(c, _)| c.clone());
    Clouds {
        others: names
            .into_iter()
            .filter(|n| Some(n) != chosen.as_ref())
            .collect(),
        cloud,
        file,
        looked,
    }
}

/// The keys one level under the top-level `clouds:` of a `clouds.yaml` (block style, as the
/// dashboards write it). Nothing under a cloud's key is read.
fn cloud_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut child_indent = None;
    for line in text.lines() {
        let body = line.trim();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            if inside {
                break;
            }
            let key = body.split('#').next().unwrap_or("").trim_end();
            inside = key == "clouds:";
            continue;
        }
        if !inside {
            continue;
        }
        let want = *child_indent.get_or_insert(indent);
        if indent != want {
            continue;
        }
        let key = if let Some(q) = body.chars().next().filter(|c| *c == '"' || *c == '\'') {
            body[1..].split(q).next()
        } else {
            body.split_once(':').map(|(k, _)| k.trim_end())
        };
        if let Some(k) = key.filter(|k| !k.is_empty()) {
            out.push(k.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_profiles_are_section_names_and_region_only() {
        let config = "[default]\nregion = us-east-1\n[profile team]\nregion=ap-south-1\ns3 =\n  region = nope\n[sso-session corp]\nsso_region = eu-west-1\n[profile  dev ]\noutput = json\n";
        let got = profiles(config, true);
        assert_eq!(
            got,
            vec![
                Profile {
                    name: "default".into(),
                    region: Some("us-east-1".into())
                },
                Profile {
                    name: "team".into(),
                    region: Some("ap-south-1".into())
                },
                Profile {
                    name: "dev".into(),
                    region: None
                },
            ]
        );
        let creds = "[ci]\naws_access_key_id = AKIA\naws_secret_access_key = s3cr3t\n";
        assert_eq!(
            profiles(creds, false),
            vec![Profile {
                name: "ci".into(),
                region: None
            }]
        );
    }

    #[test]
    fn cloud_names_are_the_keys_under_clouds() {
        let text = "# comment\nclouds:   # mine\n  lab:\n    auth:\n      password: hunter2\n    region_name: R1\n\n  \"prod-1\":\n    auth: {}\n  # a comment\n  edge: {auth: {}}\nansible:\n  x: 1\n";
        assert_eq!(cloud_names(text), vec!["lab", "prod-1", "edge"]);
        assert!(cloud_names("public-clouds:\n  a:\n").is_empty());
    }
}
