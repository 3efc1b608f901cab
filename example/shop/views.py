"""Shop pages: the landing page (product list), buying, and the order's status page."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from paydesk import services
from paydesk.exceptions import PaydeskError
from paydesk.states import PaymentStatus

from .checkout import new_checkout_token, retry_checkout, start_checkout
from .forms import BuyForm
from .models import Order, Product


def product_list(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/product_list.html", {"products": Product.objects.all()})


def _order_for_token(request: HttpRequest, product: Product, quantity: int, token: str) -> Order:
    """The order this form submission is for: created once per checkout token."""
    existing = Order.objects.filter(checkout_token=token).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return Order.objects.create(
                checkout_token=token,
                user=request.user if request.user.is_authenticated else None,
                product=product,
                quantity=quantity,
                total=(product.money.amount * quantity),
                currency=product.currency,
            )
    except IntegrityError:
        # The same form was submitted twice at once; the other request created it.
        return Order.objects.get(checkout_token=token)


@require_http_methods(["GET", "POST"])
def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=pk)
    if request.method == "POST":
        form = BuyForm(request.POST)
        if form.is_valid():
            token = form.cleaned_data["checkout_token"]
            order = _order_for_token(request, product, form.cleaned_data["quantity"], token)
            if order.product_id != product.pk:
                raise Http404("This checkout form belongs to another product.")
            return_path = reverse("shop:order-detail", args=[order.public_id])
            return start_checkout(
                request,
                target=order,
                amount=order.total,
                currency=order.currency,
                reference=f"order-{order.pk}",
                description=f"{order.quantity} x {product.name}",
                return_path=return_path,
                token=token,
                email=getattr(request.user, "email", "") or "",
            )
        status = 400
    else:
        form = BuyForm(initial={"checkout_token": new_checkout_token()})
        status = 200
    return render(
        request, "shop/product_detail.html", {"product": product, "form": form}, status=status
    )


def _visible_order(request: HttpRequest, public_id: str) -> Order:
    order = get_object_or_404(
        Order.objects.select_related("product", "payment"), public_id=public_id
    )
    if not order.visible_to(request.user):
        raise Http404("No such order.")
    return order


def order_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    order = _visible_order(request, public_id)
    payment = order.payment
    return render(
        request,
        "shop/order_detail.html",
        {
            "order": order,
            "payment": payment,
            "can_retry": payment is not None and payment.status == PaymentStatus.FAILED,
            "can_continue": payment is not None
            and payment.status == PaymentStatus.REQUIRES_ACTION
            and bool((payment.next_action or {}).get("redirect_url")),
        },
    )


@require_POST
def order_retry(request: HttpRequest, public_id: str) -> HttpResponse:
    order = _visible_order(request, public_id)
    return_path = reverse("shop:order-detail", args=[order.public_id])
    if order.payment is None:
        return redirect(return_path)
    return retry_checkout(request, payment=order.payment, return_path=return_path)


async def order_status(request: HttpRequest, public_id: str) -> HttpResponse:
    """An async view: the order's payment status, asked of the provider without a thread.

    A payment still waiting for the customer or the provider is refreshed with
    ``services.async_sync_payment``: the database steps run in Django's thread-sensitive
    executor, the provider's answer is awaited through its native async client, and the
    demo's receivers mark the order paid on commit, as after any other confirmation.
    """
    order = (
        await Order.objects.select_related("product", "payment")
        .filter(public_id=public_id)
        .afirst()
    )
    if order is None or not order.visible_to(await request.auser()):
        raise Http404("No such order.")
    payment, refreshed, problem = order.payment, False, ""
    if payment is not None and payment.status in (
        PaymentStatus.REQUIRES_ACTION,
        PaymentStatus.PROCESSING,
    ):
        try:
            payment = await services.async_sync_payment(payment=payment)
            refreshed = True
        except PaydeskError as exc:
            problem = exc.message
        order = await Order.objects.select_related("product", "payment").aget(pk=order.pk)
    context = {"order": order, "payment": payment, "refreshed": refreshed, "problem": problem}
    # Rendering reads the session and the user (base.html), which are sync-only lookups.
    return await sync_to_async(render)(request, "shop/order_status.html", context)
