//! The two booking writes of a schedule (the module doc's table): busy, one turn after the
//! last, and idle, at once; both conditional on the item being within its bounds (`item`), both
//! answering with the item (as it is now, or as it was when refused).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{n, Booked, Bounds, SharedPace};
use crate::error::Op;

impl SharedPace {
    pub(super) async fn book_busy(
        &self,
        key: &str,
        now: i64,
        limit: i64,
        bounds: Bounds,
        quota: Option<&str>,
        step: Option<i64>,
    ) -> Result<Booked, crate::error::BridgeError> {
        let update = self
            .table
            .update(key)
            .update_expression(match (quota, step) {
                (_, Some(_)) => "SET tat = tat + :step ADD n :one",
                (Some(_), None) => "SET tat = tat + #i, #q = :now ADD n :one",
                (None, None) => "SET tat = tat + #i ADD n :one",
            })
            // Types first: a comparison that meets a string fails the write (moto: a 500).
            .condition_expression(
                "attribute_type(tat, :N) AND tat BETWEEN :now AND :limit \
                 AND attribute_type(#i, :N) AND #i BETWEEN :lo AND :hi \
                 AND (attribute_not_exists(n) OR attribute_type(n, :N))",
            )
            .expression_attribute_values(":limit", n(limit));
        let update = within(update, bounds, now);
        let update = match (quota, step) {
            (_, Some(step)) => update.expression_attribute_values(":step", n(step)),
            (Some(name), None) => update.expression_attribute_names("#q", name),
            (None, None) => update,
        };
        booked(update.send().await.map(|out| out.attributes))
    }

    pub(super) async fn book_idle(
        &self,
        key: &str,
        now: i64,
        interval: i64,
        bounds: Bounds,
        quota: Option<&str>,
    ) -> Result<Booked, crate::error::BridgeError> {
        let update = self
            .table
            .update(key)
            // Idle: Connect's bucket may have refilled, so the window since the last empty
            // bucket (`adapt`) no longer counts the tokens we were given.
            .update_expression(match quota {
                Some(_) => {
                    "SET tat = :now + if_not_exists(#i, :i0), #i = if_not_exists(#i, :i0), \
                     #q = :now ADD n :one REMOVE mark_n, mark_at"
                }
                // A lane (no quota stamp): its step, whatever the item says.
                None => "SET tat = :now + :i0, #i = :i0 ADD n :one REMOVE mark_n, mark_at",
            })
            .condition_expression(
                "(attribute_not_exists(tat) OR (attribute_type(tat, :N) AND tat < :now)) \
                 AND (attribute_not_exists(#i) \
                      OR (attribute_type(#i, :N) AND #i BETWEEN :lo AND :hi)) \
                 AND (attribute_not_exists(n) OR attribute_type(n, :N))",
            )
            .expression_attribute_values(":i0", n(interval));
        let update = within(update, bounds, now);
        let update = match quota {
            Some(name) => update.expression_attribute_names("#q", name),
            None => update,
        };
        booked(update.send().await.map(|out| out.attributes))
    }
}

/// What both bookings share: the values their conditions check the item with (its types, the
/// interval's `bounds`, `now`), the count's step, and the answers (the item as it is now, or as
/// it was when refused).
fn within(update: UpdateItemFluentBuilder, bounds: Bounds, now: i64) -> UpdateItemFluentBuilder {
    update
        .expression_attribute_values(":N", AttributeValue::S("N".into()))
        .expression_attribute_values(":lo", n(bounds.lo))
        .expression_attribute_values(":hi", n(bounds.hi))
        .expression_attribute_names("#i", "interval")
        .expression_attribute_values(":now", n(now))
        .expression_attribute_values(":one", n(1))
        .return_values(ReturnValue::AllNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
}

/// A conditional write's answer: made, refused (with the old item), or the table's error.
fn booked(
    answer: Result<
        Option<HashMap<String, AttributeValue>>,
        aws_sdk_dynamodb::error::SdkError<
            UpdateItemError,
            aws_sdk_dynamodb::config::http::HttpResponse,
        >,
    >,
) -> Result<Booked, crate::error::BridgeError> {
    match answer {
        Ok(item) => Ok(Booked::Made(item.unwrap_or_default())),
        Err(err) => match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                Ok(Booked::Refused(refused.item.clone()))
            }
            _ => Err(Op::UpdateItem.error(err)),
        },
    }
}
