# AuditLog moves here from entitlements. State only: the model keeps the table entitlements_auditlog
# (db_table) and its rows; nothing is copied. The content type is renamed rather than recreated, so
# that permissions granted on the audit log and the admin's history of it stay attached.

import django.db.models.deletion
from django.db import migrations, models


def _content_type_move(apps, schema_editor, *, source, target):
    content_type = apps.get_model('contenttypes', 'ContentType')
    moving = content_type.objects.filter(app_label=source, model='auditlog')
    if not content_type.objects.filter(app_label=target, model='auditlog').exists():
        moving.update(app_label=target)


def content_type_to_common(apps, schema_editor):
    _content_type_move(apps, schema_editor, source='entitlements', target='common')


def content_type_to_entitlements(apps, schema_editor):
    _content_type_move(apps, schema_editor, source='common', target='entitlements')


class Migration(migrations.Migration):

    dependencies = [
        ('common', '0002_idempotencyrecord'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('entitlements', '0003_auditlog_to_common_revenueentry_plural'),
        ('projects', '0003_project_allow_multiple_subscriptions'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AuditLog',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('occurred_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                        ('actor', models.CharField(max_length=255)),
                        ('action', models.CharField(max_length=64)),
                        ('target', models.CharField(max_length=255)),
                        ('reason', models.TextField(blank=True)),
                        ('before', models.JSONField(blank=True, null=True)),
                        ('after', models.JSONField(blank=True, null=True)),
                        ('project', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='audit_log', to='projects.project')),
                    ],
                    options={
                        'db_table': 'entitlements_auditlog',
                        'ordering': ['-occurred_at'],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_common, content_type_to_entitlements, elidable=True),
    ]
