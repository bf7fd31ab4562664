from django.urls import path

from apps.projects import api

urlpatterns = [
    path("me", api.WhoAmIApi.as_view(), name="whoami"),
    path("projects/<int:project_id>", api.ProjectDetailApi.as_view(), name="project-detail"),
    path("apps/<int:app_id>", api.AppDetailApi.as_view(), name="app-detail"),
]
