"""Event pages, booking checkout, and the booking page with its partial-refund form."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from paydesk import services
from paydesk.exceptions import PaydeskError
from paydesk.money import Money
from paydesk.states import REFUNDABLE, PaymentStatus, RefundStatus
from shop.checkout import new_checkout_token, retry_checkout, start_checkout

from .forms import BookForm, RefundForm
from .models import Booking, Event


def event_list(request: HttpRequest) -> HttpResponse:
    return render(request, "bookings/event_list.html", {"events": Event.objects.all()})


def _booking_for_token(request: HttpRequest, event: Event, email: str, token: str) -> Booking:
    existing = Booking.objects.filter(checkout_token=token).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return Booking.objects.create(
                checkout_token=token,
                event=event,
                user=request.user if request.user.is_authenticated else None,
                email=email,
            )
    except IntegrityError:
        return Booking.objects.get(checkout_token=token)


@require_http_methods(["GET", "POST"])
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = get_object_or_404(Event, pk=pk)
    status = 200
    if request.method == "POST":
        form = BookForm(request.POST)
        if event.has_started:
            messages.error(request, "This event has started; booking is closed.")
            status = 400
        elif form.is_valid():
            token = form.cleaned_data["checkout_token"]
            booking = _booking_for_token(request, event, form.cleaned_data["email"], token)
            if booking.event_id != event.pk:
                raise Http404("This booking form belongs to another event.")
            return start_checkout(
                request,
                target=booking,
                amount=event.price,
                currency=event.currency,
                reference=f"booking-{booking.pk}",
                description=f"Ticket: {event.title}",
                return_path=reverse("bookings:booking-detail", args=[booking.public_id]),
                token=token,
                email=booking.email,
            )
        else:
            status = 400
    else:
        form = BookForm(
            initial={
                "checkout_token": new_checkout_token(),
                "email": getattr(request.user, "email", "") or "",
            }
        )
    return render(
        request, "bookings/event_detail.html", {"event": event, "form": form}, status=status
    )


def _visible_booking(request: HttpRequest, public_id: str) -> Booking:
    booking = get_object_or_404(
        Booking.objects.select_related("event", "payment"), public_id=public_id
    )
    if not booking.visible_to(request.user):
        raise Http404("No such booking.")
    return booking


def booking_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    booking = _visible_booking(request, public_id)
    payment = booking.payment
    refunds = [
        {"refund": refund, "money": Money(refund.amount, refund.currency)}
        for refund in (payment.refunds.order_by("created_at") if payment else [])
    ]
    can_refund = (
        payment is not None
        and payment.status in REFUNDABLE
        and payment.refundable_amount > 0
        and booking.can_refund(request.user)
    )
    context = {
        "booking": booking,
        "payment": payment,
        "refunds": refunds,
        "can_refund": can_refund,
        "can_retry": payment is not None and payment.status == PaymentStatus.FAILED,
        "can_continue": payment is not None
        and payment.status == PaymentStatus.REQUIRES_ACTION
        and bool((payment.next_action or {}).get("redirect_url")),
    }
    if payment is not None:
        context["refundable"] = Money(payment.refundable_amount, payment.currency)
        context["refunded"] = Money(payment.refunded_amount, payment.currency)
        context["fee"] = Money(payment.processing_fee, payment.currency)
    if can_refund:
        context["refund_form"] = RefundForm(initial={"amount": context["refundable"].amount})
    return render(request, "bookings/booking_detail.html", context)


@require_POST
def booking_retry(request: HttpRequest, public_id: str) -> HttpResponse:
    booking = _visible_booking(request, public_id)
    return_path = reverse("bookings:booking-detail", args=[booking.public_id])
    if booking.payment is None:
        return redirect(return_path)
    return retry_checkout(request, payment=booking.payment, return_path=return_path)


@require_POST
def booking_refund(request: HttpRequest, public_id: str) -> HttpResponse:
    booking = _visible_booking(request, public_id)
    return_path = reverse("bookings:booking-detail", args=[booking.public_id])
    if not booking.can_refund(request.user):
        raise PermissionDenied("Only staff or the customer who booked can refund this booking.")
    if booking.payment is None:
        messages.error(request, "This booking has no payment to refund.")
        return redirect(return_path)
    form = RefundForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, f"Refund not made: {error}")
        return redirect(return_path)
    try:
        refund = services.create_refund(
            payment=booking.payment,
            amount=form.cleaned_data["amount"],
            reason=form.cleaned_data["reason"],
            user=request.user,
        )
    except PaydeskError as exc:
        messages.error(request, f"Refund not made: {exc.message}")
        return redirect(return_path)
    amount = Money(refund.amount, refund.currency).format()
    if refund.status == RefundStatus.COMPLETED:
        messages.success(request, f"Refunded {amount}.")
    elif refund.status == RefundStatus.FAILED:
        messages.error(request, f"The refund of {amount} failed: {refund.failure_message}")
    else:
        messages.info(request, f"The refund of {amount} is on its way ({refund.status}).")
    return redirect(return_path)
