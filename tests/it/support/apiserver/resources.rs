//! The resource kinds the stand-in serves (built-in ones and those registered from a
//! CustomResourceDefinition) and the discovery documents (`/api`, `/apis/...`) that describe
//! them to `kubectl` and `kube`.

use std::sync::Arc;

use serde_json::{Value, json};

/// One column of `kubectl get` output, from a CRD's `additionalPrinterColumns`.
#[derive(Debug, Clone)]
pub(crate) struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// A resource kind: where it lives in the URL space and how the server treats it.
#[derive(Debug, Clone)]
pub(crate) struct ResourceDef {
    /// API group, `""` for the core group.
    pub group: String,
    /// Served versions, the storage version first.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Discovery categories (`all`, ...), for `kubectl get all`.
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (then the main resource ignores `.status`).
    pub status_subresource: bool,
    /// Printer columns for Table output (empty: Name and Age only).
    pub columns: Vec<PrinterColumn>,
    /// A custom resource: strategic merge patch is refused, updates need a resourceVersion and
    /// delete returns the object (as for CRDs on a real server).
    pub custom: bool,
}

impl ResourceDef {
    fn builtin(group: &str, plural: &str, kind: &str, namespaced: bool, short: &[&str]) -> Self {
        Self {
            group: group.to_owned(),
            versions: vec!["v1".to_owned()],
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            kind: kind.to_owned(),
            list_kind: format!("{kind}List"),
            namespaced,
            short_names: short.iter().map(|s| (*s).to_owned()).collect(),
            categories: Vec::new(),
            status_subresource: false,
            columns: Vec::new(),
            custom: false,
        }
    }

    /// The storage key shared by all versions: `group/plural`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `plural.group` (or `plural` in the core group), as used in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `group/version` (or `version` in the core group).
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Whether `name` designates this resource on the command line or in tests: its plural,
    /// singular, kind, a short name, or `plural.group`.
    pub fn answers_to(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        name == self.plural
            || name == self.singular
            || name == self.kind.to_lowercase()
            || name == self.qualified()
            || self.short_names.contains(&name)
    }
}

/// Builds a resource definition from a `CustomResourceDefinition` object (JSON).
pub(crate) fn from_crd(crd: &Value) -> Result<ResourceDef, String> {
    let spec = &crd["spec"];
    let text = |v: &Value, what: &str| -> Result<String, String> {
        v.as_str().map(str::to_owned).ok_or_else(|| format!("spec.{what} is required"))
    };
    let group = text(&spec["group"], "group")?;
    let names = &spec["names"];
    let plural = text(&names["plural"], "names.plural")?;
    let kind = text(&names["kind"], "names.kind")?;
    let singular = names["singular"].as_str().map_or_else(|| kind.to_lowercase(), str::to_owned);
    let list_kind = names["listKind"].as_str().map_or_else(|| format!("{kind}List"), str::to_owned);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let short_names = strings(&names["shortNames"]);
    let categories = strings(&names["categories"]);
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope must be Namespaced or Cluster".into()),
    };
    let all = spec["versions"].as_array().ok_or("spec.versions is required")?;
    let mut served: Vec<&Value> = all.iter().filter(|v| v["served"] != json!(false)).collect();
    served.sort_by_key(|v| v["storage"] != json!(true));
    let storage = *served.first().ok_or("no served version")?;
    let versions = served
        .iter()
        .map(|v| text(&v["name"], "versions[].name"))
        .collect::<Result<Vec<_>, _>>()?;
    let columns = storage["additionalPrinterColumns"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| PrinterColumn {
                    name: c["name"].as_str().unwrap_or_default().to_owned(),
                    type_: c["type"].as_str().unwrap_or("string").to_owned(),
                    format: c["format"].as_str().unwrap_or_default().to_owned(),
                    description: c["description"].as_str().unwrap_or_default().to_owned(),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    json_path: c["jsonPath"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ResourceDef {
        group,
        versions,
        plural,
        singular,
        kind,
        list_kind,
        namespaced,
        short_names,
        categories,
        status_subresource: storage["subresources"].get("status").is_some(),
        columns,
        custom: true,
    })
}

/// Every kind the server knows, built-in or registered.
#[derive(Debug)]
pub(crate) struct Registry {
    defs: Vec<Arc<ResourceDef>>,
}

impl Registry {
    /// The built-in kinds: core `namespaces`, `secrets`, `configmaps`, `events`;
    /// `events.k8s.io/v1 events`; `coordination.k8s.io/v1 leases`;
    /// `apiextensions.k8s.io/v1 customresourcedefinitions`.
    pub fn builtin() -> Self {
        let mut namespaces = ResourceDef::builtin("", "namespaces", "Namespace", false, &["ns"]);
        namespaces.status_subresource = true;
        let mut crds = ResourceDef::builtin(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        );
        crds.status_subresource = true;
        let defs = vec![
            namespaces,
            ResourceDef::builtin("", "secrets", "Secret", true, &[]),
            ResourceDef::builtin("", "configmaps", "ConfigMap", true, &["cm"]),
            ResourceDef::builtin("", "events", "Event", true, &["ev"]),
            ResourceDef::builtin("events.k8s.io", "events", "Event", true, &["ev"]),
            ResourceDef::builtin("coordination.k8s.io", "leases", "Lease", true, &[]),
            crds,
        ];
        Self {
            defs: defs.into_iter().map(Arc::new).collect(),
        }
    }

    /// Adds a kind, replacing any previous definition of the same `group/plural`.
    pub fn register(&mut self, def: ResourceDef) {
        self.defs.retain(|d| d.key() != def.key());
        self.defs.push(Arc::new(def));
    }

    /// Removes the kind stored under `key` (`group/plural`).
    pub fn unregister(&mut self, key: &str) {
        self.defs.retain(|d| d.key() != key);
    }

    /// The kind served at `/apis/group/version/plural` (or `/api/version/plural`).
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.plural == plural && d.versions.iter().any(|v| v == version))
            .cloned()
    }

    /// The kind a test designates by name (see [`ResourceDef::answers_to`]); custom kinds
    /// win over built-in ones sharing a short name.
    pub fn find(&self, name: &str) -> Option<Arc<ResourceDef>> {
        self.defs.iter().rev().find(|d| d.answers_to(name)).cloned()
    }

    /// `/api`: the core group's versions.
    pub fn api_versions(&self, server: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server }],
        })
    }

    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for def in self.defs.iter().filter(|d| !d.group.is_empty()) {
            let idx = match groups.iter().position(|(g, _)| *g == def.group) {
                Some(i) => i,
                None => {
                    groups.push((def.group.clone(), Vec::new()));
                    groups.len() - 1
                }
            };
            for v in &def.versions {
                if !groups[idx].1.contains(v) {
                    groups[idx].1.push(v.clone());
                }
            }
        }
        groups
    }

    fn group_json(group: &str, versions: &[String]) -> Value {
        let gv = |v: &String| json!({ "groupVersion": format!("{group}/{v}"), "version": v });
        json!({
            "name": group,
            "versions": versions.iter().map(gv).collect::<Vec<_>>(),
            "preferredVersion": gv(&versions[0]),
        })
    }

    /// `/apis`: every named group.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self.groups().iter().map(|(g, vs)| Self::group_json(g, vs)).collect();
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
    }

    /// `/apis/group`: one group, if known.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        let (g, vs) = self.groups().into_iter().find(|(g, _)| g == group)?;
        let mut doc = Self::group_json(&g, &vs);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    /// `/api/v1` or `/apis/group/version`: the resources of one group version, if known.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let defs: Vec<&Arc<ResourceDef>> = self
            .defs
            .iter()
            .filter(|d| d.group == group && d.versions.iter().any(|v| v == version))
            .collect();
        if defs.is_empty() && !(group.is_empty() && version == "v1") {
            return None;
        }
        let verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
        let mut resources = Vec::new();
        for d in defs {
            let mut entry = json!({
                "name": d.plural,
                "singularName": d.singular,
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": verbs,
            });
            if !d.short_names.is_empty() {
                entry["shortNames"] = json!(d.short_names);
            }
            if !d.categories.is_empty() {
                entry["categories"] = json!(d.categories);
            }
            resources.push(entry);
            if d.status_subresource {
                resources.push(json!({
                    "name": format!("{}/status", d.plural),
                    "singularName": "",
                    "namespaced": d.namespaced,
                    "kind": d.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") },
            "resources": resources,
        }))
    }
}

/// `/version`.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-standin",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
