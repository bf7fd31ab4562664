# AuditLog moves to the common app (grants and replays both write it). State only: the table
# entitlements_auditlog stays where it is, with its rows; common.0003 takes the model over.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('entitlements', '0002_revenueentry_payment_intent'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='AuditLog')],
            database_operations=[],
        ),
        migrations.AlterModelOptions(
            name='revenueentry',
            options={'verbose_name_plural': 'revenue entries'},
        ),
    ]
