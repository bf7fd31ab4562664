from django.urls import path

from apps.common import api_scheduler

urlpatterns = [
    path("observability/scheduler", api_scheduler.SchedulerHealthApi.as_view(), name="scheduler-health"),
]
