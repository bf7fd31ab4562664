"""The customer page and its actions: one view per operation, each POST-only and permission-checked.

The views are wrapped by the admin site's `admin_view` (staff login, CSRF protection, no caching)
where their URLs are declared (BillingCustomer's admin). Every write goes through the service the
API uses (grant_create, grants_revoke, replay_run), which records the audit entry.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from apps.common.customer_page.selectors import customer_overview, customer_user_ids
from apps.entitlements import grants
from apps.entitlements.models import Grant
from apps.projects.models import Project
from apps.webhooks.models import ProcessorEvent, ReplayRun
from apps.webhooks.replays import ReplayTooLarge, replay_run

PAGE = "admin:customer_page"
VIEW_PERMISSION = "checkout.view_billingcustomer"
GRANT_PERMISSION = "entitlements.add_grant"
REVOKE_PERMISSION = "entitlements.change_grant"
# The ledger admin's replay action asks for the same permission (webhooks/admin.py).
REPLAY_PERMISSION = "webhooks.change_processorevent"


class CustomerSearchForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.order_by("slug"), to_field_name="slug")
    user_id = forms.CharField(required=False, max_length=255, label="User id")
    email = forms.EmailField(required=False, label="Email")
    stripe_customer_id = forms.CharField(required=False, max_length=255, label="Stripe customer id")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        given = [name for name in ("user_id", "email", "stripe_customer_id") if data.get(name)]
        if len(given) != 1:
            raise ValidationError("Fill in exactly one of user id, email and Stripe customer id.")
        return data


class GrantForm(forms.Form):
    feature_code = forms.CharField(max_length=64)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    valid_to = forms.DateTimeField(required=False, help_text="Blank for no end.")


class RevokeForm(forms.Form):
    grant_id = forms.IntegerField()
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class ReplayForm(forms.Form):
    event_id = forms.CharField(max_length=255)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


def page_url(project: Project, user_id: str) -> str:
    return f"{reverse(PAGE)}?{urlencode({'project': project.slug, 'user_id': user_id})}"


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


def _require(request: HttpRequest, *permissions: str) -> None:
    if not all(request.user.has_perm(name) for name in (VIEW_PERMISSION, *permissions)):
        raise PermissionDenied


def customer_page_view(request: HttpRequest, admin_site: AdminSite) -> HttpResponse:
    """The search form, the list of users an email or customer id names, or one user's page."""
    _require(request)
    form = CustomerSearchForm(request.GET or None)
    context: dict[str, Any] = {
        **admin_site.each_context(request),
        "title": "Customer",
        "form": form,
        "matches": None,
        "overview": None,
    }
    if form.is_bound and form.is_valid():
        project: Project = form.cleaned_data["project"]
        matches = customer_user_ids(
            project=project,
            user_id=form.cleaned_data["user_id"],
            email=form.cleaned_data["email"],
            stripe_customer_id=form.cleaned_data["stripe_customer_id"],
        )
        if len(matches) == 1:
            user_id = matches[0]
            context["overview"] = customer_overview(project=project, user_id=user_id)
            context["title"] = f"Customer {user_id} of {project.slug}"
            context["page_url"] = page_url(project, user_id)
            context["grant_form"] = GrantForm()
            context["can_grant"] = request.user.has_perm(GRANT_PERMISSION)
            context["can_revoke"] = request.user.has_perm(REVOKE_PERMISSION)
            context["can_replay"] = request.user.has_perm(REPLAY_PERMISSION)
        else:
            context["matches"] = [(user_id, page_url(project, user_id)) for user_id in matches]
    return TemplateResponse(request, "admin/customer/page.html", context)


def _target(request: HttpRequest) -> tuple[Project, str]:
    project = get_object_or_404(Project, slug=request.POST.get("project", ""))
    user_id = request.POST.get("user_id", "")
    if not user_id:
        raise PermissionDenied  # not a form this page renders
    return project, user_id


def _errors(form: forms.Form) -> str:
    return "; ".join(f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items())


@require_POST
def customer_grant_view(request: HttpRequest) -> HttpResponse:
    _require(request, GRANT_PERMISSION)
    project, user_id = _target(request)
    form = GrantForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not granted: {_errors(form)}")
        return HttpResponseRedirect(page_url(project, user_id))
    try:
        grant = grants.grant_create(
            project=project,
            user_id=user_id,
            feature_code=form.cleaned_data["feature_code"],
            granted_by=_actor(request),
            reason=form.cleaned_data["reason"],
            valid_to=form.cleaned_data["valid_to"],
        )
    except ValidationError as exc:
        messages.error(request, f"Not granted: {' '.join(exc.messages)}")
    else:
        messages.success(request, f"Granted {grant.feature_code} (grant #{grant.pk}).")
    return HttpResponseRedirect(page_url(project, user_id))


@require_POST
def customer_revoke_view(request: HttpRequest) -> HttpResponse:
    _require(request, REVOKE_PERMISSION)
    project, user_id = _target(request)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not revoked: {_errors(form)}")
        return HttpResponseRedirect(page_url(project, user_id))
    grant = get_object_or_404(Grant, pk=form.cleaned_data["grant_id"], project=project, user_id=user_id)
    count = grants.grants_revoke(
        project=project,
        user_id=user_id,
        feature_code=grant.feature_code,
        revoked_by=_actor(request),
        reason=form.cleaned_data["reason"],
        grant_id=grant.pk,
    )
    if count:
        messages.success(request, f"Revoked grant #{grant.pk} ({grant.feature_code}).")
    else:
        messages.warning(request, f"Grant #{grant.pk} had already ended: nothing revoked.")
    return HttpResponseRedirect(page_url(project, user_id))


@require_POST
def customer_replay_view(request: HttpRequest) -> HttpResponse:
    _require(request, REPLAY_PERMISSION)
    project, user_id = _target(request)
    form = ReplayForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not replayed: {_errors(form)}")
        return HttpResponseRedirect(page_url(project, user_id))
    # Only an event of this customer: the page must not become a way to replay anything by id.
    event = get_object_or_404(
        ProcessorEvent, stripe_event_id=form.cleaned_data["event_id"], project=project, user_id=user_id
    )
    try:
        run = replay_run(
            project_id=project.pk,
            requested_by=f"admin:{_actor(request)}",
            event_ids=[event.stripe_event_id],
            reason=form.cleaned_data["reason"],
        )
    except ReplayTooLarge as exc:  # one event never is; kept so that a change there stays a message
        messages.error(request, str(exc))
        return HttpResponseRedirect(page_url(project, user_id))
    counts = ", ".join(f"{name} {n}" for name, n in run.counts.items())
    if run.status == ReplayRun.Status.FAILED:
        messages.warning(request, f"Replay #{run.pk} of {event.stripe_event_id} failed: {counts}.")
    else:
        messages.success(request, f"Replay #{run.pk} of {event.stripe_event_id}: {counts}.")
    return HttpResponseRedirect(page_url(project, user_id))
