"""Every Google API method the ``cloud-run`` pool type calls, and the IAM permission each
needs: who calls it (the control plane, or the user provisioning from the CLI)."""

from __future__ import annotations

#: (API method, IAM permission, caller, what for)
CONTROL_PLANE = (
    ("run.projects.locations.jobs.create", "run.jobs.create", "submit: job + its execution"),
    ("run.projects.locations.jobs.get", "run.jobs.get", "find / adopt after a 409"),
    ("run.projects.locations.jobs.list", "run.jobs.list", "orphan sweep"),
    ("run.projects.locations.jobs.delete", "run.jobs.delete", "teardown, sweep"),
    (
        "run.projects.locations.jobs.executions.list",
        "run.executions.list",
        "status, status_many (jobs/-)",
    ),
    ("run.projects.locations.jobs.executions.cancel", "run.executions.cancel", "cancel"),
    ("run.projects.locations.jobs.executions.tasks.list", "run.tasks.list", "exit codes"),
    ("logging.entries.list", "logging.logEntries.list", "log_tail (last words)"),
    (
        "secretmanager.projects.secrets.addVersion",
        "secretmanager.versions.add",
        "submit: a block secret's value (new or rotated)",
    ),
    ("secretmanager.projects.secrets.create", "secretmanager.secrets.create", "block secrets"),
    (
        "secretmanager.projects.secrets.getIamPolicy",
        "secretmanager.secrets.getIamPolicy",
        "block secrets: who may read",
    ),
    (
        "secretmanager.projects.secrets.setIamPolicy",
        "secretmanager.secrets.setIamPolicy",
        "block secrets: the job's account may read (that secret only)",
    ),
    (
        "secretmanager.projects.secrets.list",
        "secretmanager.secrets.list",
        "sweep (secrets no deployment references), deprovision",
    ),
    (
        "secretmanager.projects.secrets.delete",
        "secretmanager.secrets.delete",
        "sweep, deprovision",
    ),
    (
        "(acting as the runtime service account)",
        "iam.serviceAccounts.actAs",
        "jobs run as the pool's account",
    ),
)
PROVISIONING = (
    ("serviceusage.services.get", "serviceusage.services.get", "plan"),
    ("serviceusage.services.enable", "serviceusage.services.enable", "enable APIs"),
    ("serviceusage.services.disable", "serviceusage.services.disable", "deprovision"),
    ("iam.projects.serviceAccounts.get", "iam.serviceAccounts.get", "plan"),
    ("iam.projects.serviceAccounts.create", "iam.serviceAccounts.create", "runtime account"),
    ("iam.projects.serviceAccounts.delete", "iam.serviceAccounts.delete", "deprovision"),
    ("iam.projects.serviceAccounts.getIamPolicy", "iam.serviceAccounts.getIamPolicy", "plan"),
    (
        "iam.projects.serviceAccounts.setIamPolicy",
        "iam.serviceAccounts.setIamPolicy",
        "serviceAccountUser for the control plane",
    ),
    (
        "cloudresourcemanager.projects.getIamPolicy",
        "resourcemanager.projects.getIamPolicy",
        "plan",
    ),
    (
        "cloudresourcemanager.projects.setIamPolicy",
        "resourcemanager.projects.setIamPolicy",
        "project role bindings",
    ),
    ("artifactregistry.repositories.get", "artifactregistry.repositories.get", "plan"),
    (
        "artifactregistry.repositories.create",
        "artifactregistry.repositories.create",
        "image repository",
    ),
    (
        "artifactregistry.repositories.delete",
        "artifactregistry.repositories.delete",
        "deprovision",
    ),
    ("storage.buckets.get", "storage.buckets.get", "plan: the result bucket"),
    ("storage.buckets.insert", "storage.buckets.create", "the result bucket"),
    ("storage.buckets.getIamPolicy", "storage.buckets.getIamPolicy", "plan"),
    (
        "storage.buckets.setIamPolicy",
        "storage.buckets.setIamPolicy",
        "objectAdmin on the result bucket for the runtime account",
    ),
    ("storage.objects.list", "storage.objects.list", "deprovision: empty the result bucket"),
    ("storage.objects.delete", "storage.objects.delete", "deprovision: empty the result bucket"),
    ("storage.buckets.delete", "storage.buckets.delete", "deprovision"),
    ("(the Cloud Run methods above)", "run.jobs.list, run.jobs.delete", "deprovision"),
)


def table() -> str:
    """Both lists as text, for the pool's setup notes."""
    lines = [
        "Control plane (roles/run.developer, roles/logging.viewer; iam.serviceAccountUser on"
        " the runtime account only; roles/secretmanager.admin under a condition: the"
        " pool's secrets pushpool-<pool>_* only, and the project for create and list):"
    ]
    lines += [f"  {method}: {permission} ({why})" for method, permission, why in CONTROL_PLANE]
    lines.append("Provisioning (the user's own credentials, from the CLI):")
    lines += [f"  {method}: {permission} ({why})" for method, permission, why in PROVISIONING]
    return "\n".join(lines)
