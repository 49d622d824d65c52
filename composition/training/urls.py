from django.urls import path

from composition.training import views

urlpatterns = [
    path("", views.training_new, name="train"),
    path("jobs/", views.training_job_list, name="training-list"),
    path("jobs/<int:job_id>/", views.training_job_detail, name="training-job"),
    path("jobs/<int:job_id>/cancel/", views.training_job_cancel, name="training-cancel"),
]
