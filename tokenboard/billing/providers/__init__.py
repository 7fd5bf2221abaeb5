"""Payment providers: the interface billing calls and the providers that implement it."""

from __future__ import annotations

from tokenboard.billing.providers.base import PaymentProvider
from tokenboard.billing.providers.offline import OfflineProvider
from tokenboard.config import PaymentProviderKind, Settings


def provider_for(settings: Settings) -> PaymentProvider:
    """The provider the installation is configured with (``TOKENBOARD_PAYMENT_PROVIDER``)."""
    if settings.payment_provider == PaymentProviderKind.offline:
        return OfflineProvider()
    from tokenboard.billing.providers.stripe import StripeProvider

    return StripeProvider(settings)
