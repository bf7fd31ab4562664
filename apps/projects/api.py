"""Endpoints that tell a micro-app about its own key, app and project."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import client_of
from apps.projects import selectors
from apps.projects.models import ALL_SCOPES
from apps.projects.permissions import CLIENT_PERMISSIONS

# The examples are the demo tenant's (`make run`), whose app holds every scope.
_DEMO_SCOPES = sorted(ALL_SCOPES)


class WhoAmIApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    class OutputSerializer(serializers.Serializer[object]):
        key_prefix = serializers.CharField()
        app = serializers.DictField()
        project = serializers.DictField()
        scopes = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        operation_id="whoami",
        summary="The app and project your API key acts for",
        description="A quick way to check that a key works and which scopes it carries.",
        responses={200: OutputSerializer},
        examples=[
            OpenApiExample(
                "A key of the demo app",
                value={
                    "key_prefix": "demo0000",
                    "app": {"id": 1, "name": "demo-app"},
                    "project": {"id": 1, "slug": "demo"},
                    "scopes": _DEMO_SCOPES,
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        client = client_of(request)
        return Response(
            {
                "key_prefix": client.key_prefix,
                "app": {"id": client.app_id, "name": client.app_name},
                "project": {"id": client.project_id, "slug": client.project_slug},
                "scopes": sorted(client.scopes),
            }
        )


class ProjectDetailApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    class OutputSerializer(serializers.Serializer[object]):
        id = serializers.IntegerField()
        name = serializers.CharField()
        slug = serializers.SlugField()
        active = serializers.BooleanField()
        allowed_redirect_prefixes = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        operation_id="project_retrieve",
        summary="Your project, with its redirect URL allowlist",
        responses={200: OutputSerializer},
        examples=[
            OpenApiExample(
                "The demo project",
                value={
                    "id": 1,
                    "name": "Demo project",
                    "slug": "demo",
                    "active": True,
                    "allowed_redirect_prefixes": [
                        "http://127.0.0.1:8000/",
                        "http://localhost:8000/",
                        "https://app.local/",
                    ],
                },
            )
        ],
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_list().filter(pk=client_of(request).project_id).first()
        if project is None:
            raise Http404
        return Response(self.OutputSerializer(project).data)


class AppDetailApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    class OutputSerializer(serializers.Serializer[object]):
        id = serializers.IntegerField()
        name = serializers.CharField()
        project_id = serializers.IntegerField()
        active = serializers.BooleanField()
        scopes = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        operation_id="app_retrieve",
        summary="An app of your project (404 for another project's app)",
        responses={200: OutputSerializer},
        examples=[
            OpenApiExample(
                "The demo app",
                value={"id": 1, "name": "demo-app", "project_id": 1, "active": True, "scopes": _DEMO_SCOPES},
            )
        ],
    )
    def get(self, request: Request, app_id: int) -> Response:
        app = selectors.app_get_for_project(app_id=app_id, project_id=client_of(request).project_id)
        if app is None:
            raise Http404
        return Response(self.OutputSerializer(app).data)
