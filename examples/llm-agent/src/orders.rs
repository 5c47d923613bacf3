//! A tiny fake order service over a fixed table, offered to the model as
//! tools: `lookup_order` (status, amount, delivery date, and whether the
//! agent may refund it) and `issue_refund` (only delivered orders up to the
//! refund limit; idempotent, so a retried turn never refunds twice).

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::llm::Tool;

/// Orders the agent refunds on its own up to this amount, in cents.
pub const DEFAULT_REFUND_LIMIT_CENTS: u64 = 10_000;

pub const LOOKUP_ORDER: &str = "lookup_order";
pub const ISSUE_REFUND: &str = "issue_refund";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Processing,
    Shipped,
    Delivered,
}

#[derive(Debug, Clone, Copy)]
pub struct Order {
    pub id: &'static str,
    pub item: &'static str,
    pub status: OrderStatus,
    pub amount_cents: u64,
    pub currency: &'static str,
    pub delivered_on: Option<&'static str>,
}

/// The shop's orders.
pub const ORDERS: &[Order] = &[
    Order {
        id: "1234",
        item: "ceramic mug set",
        status: OrderStatus::Delivered,
        amount_cents: 4_250,
        currency: "USD",
        delivered_on: Some("2026-11-20"),
    },
    Order {
        id: "1235",
        item: "desk lamp",
        status: OrderStatus::Shipped,
        amount_cents: 1_999,
        currency: "USD",
        delivered_on: None,
    },
    Order {
        id: "1236",
        item: "espresso machine",
        status: OrderStatus::Delivered,
        amount_cents: 42_000,
        currency: "USD",
        delivered_on: Some("2026-11-18"),
    },
    Order {
        id: "1237",
        item: "wool scarf",
        status: OrderStatus::Processing,
        amount_cents: 3_500,
        currency: "USD",
        delivered_on: None,
    },
];

/// `12.34 USD`-style amount text.
pub fn amount_text(cents: u64, currency: &str) -> String {
    let symbol = match currency {
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        _ => "",
    };
    if symbol.is_empty() {
        format!("{}.{:02} {currency}", cents / 100, cents % 100)
    } else {
        format!("{symbol}{}.{:02}", cents / 100, cents % 100)
    }
}

/// An order number as customers write it: `#1234`, ` 1234 `, `order 1234`.
pub fn normalize_order_id(text: &str) -> String {
    let text = text.trim();
    let text = text
        .strip_prefix("order")
        .or_else(|| text.strip_prefix("Order"))
        .unwrap_or(text)
        .trim();
    text.trim_start_matches('#').trim().to_string()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
struct OrderArgs {
    order_id: String,
}

/// The order service: the fixed table and the refunds issued so far.
#[derive(Debug)]
pub struct OrderService {
    refund_limit_cents: u64,
    refunded: Mutex<HashSet<String>>,
}

impl Default for OrderService {
    fn default() -> Self {
        OrderService::new(DEFAULT_REFUND_LIMIT_CENTS)
    }
}

impl OrderService {
    pub fn new(refund_limit_cents: u64) -> OrderService {
        OrderService {
            refund_limit_cents,
            refunded: Mutex::new(HashSet::new()),
        }
    }

    fn find(order_id: &str) -> Option<&'static Order> {
        let id = normalize_order_id(order_id);
        ORDERS.iter().find(|o| o.id == id)
    }

    fn refundable(&self, order: &Order) -> bool {
        order.status == OrderStatus::Delivered && order.amount_cents <= self.refund_limit_cents
    }

    fn is_refunded(&self, id: &str) -> bool {
        self.refunded.lock().map(|set| set.contains(id)).unwrap_or(false)
    }

    pub fn lookup_order(&self, order_id: &str) -> Value {
        let Some(order) = Self::find(order_id) else {
            return json!({"found": false, "orderId": normalize_order_id(order_id)});
        };
        json!({
            "found": true,
            "orderId": order.id,
            "item": order.item,
            "status": order.status,
            "amount": amount_text(order.amount_cents, order.currency),
            "amountCents": order.amount_cents,
            "currency": order.currency,
            "deliveredOn": order.delivered_on,
            "refunded": self.is_refunded(order.id),
            "refundable": self.refundable(order),
            "refundLimit": amount_text(self.refund_limit_cents, order.currency),
        })
    }

    pub fn issue_refund(&self, order_id: &str) -> Value {
        let Some(order) = Self::find(order_id) else {
            return json!({"refunded": false, "reason": "no such order"});
        };
        if !self.refundable(order) {
            let reason = if order.status != OrderStatus::Delivered {
                "the order has not been delivered"
            } else {
                "the amount is over the limit the agent may refund; a representative must approve it"
            };
            return json!({"refunded": false, "orderId": order.id, "reason": reason});
        }
        let already = match self.refunded.lock() {
            Ok(mut set) => !set.insert(order.id.to_string()),
            Err(_) => return json!({"refunded": false, "orderId": order.id, "reason": "the refund service failed; retry"}),
        };
        json!({
            "refunded": true,
            "alreadyRefunded": already,
            "orderId": order.id,
            "amount": amount_text(order.amount_cents, order.currency),
        })
    }

    /// Runs a tool call of the model: its JSON result, or an error text the
    /// model is shown (a bad call is the model's to correct, not a failure).
    pub fn call(&self, name: &str, arguments: &str) -> Result<Value, String> {
        let args = || -> Result<OrderArgs, String> {
            serde_json::from_str(arguments).map_err(|_| format!("{name} takes {{\"order_id\": \"...\"}}"))
        };
        match name {
            LOOKUP_ORDER => Ok(self.lookup_order(&args()?.order_id)),
            ISSUE_REFUND => Ok(self.issue_refund(&args()?.order_id)),
            other => Err(format!("there is no tool named {other:?}")),
        }
    }

    /// The tools as the chat completions API declares them.
    pub fn tools() -> Vec<Tool> {
        let order_id = json!({
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order number, e.g. 1234"}},
            "required": ["order_id"],
            "additionalProperties": false,
        });
        vec![
            Tool::function(
                LOOKUP_ORDER,
                "Look up an order by its number: item, status (processing, shipped, delivered), amount, delivery date, \
                 whether it was refunded and whether you may refund it yourself.",
                order_id.clone(),
            ),
            Tool::function(
                ISSUE_REFUND,
                "Refund an order to the customer's original payment method. Only delivered orders up to the refund \
                 limit; anything else needs a representative.",
                order_id,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_and_refunds_within_the_limit_once() {
        let orders = OrderService::default();
        let found = orders.lookup_order("#1234");
        assert_eq!(found["found"], true);
        assert_eq!(found["amount"], "$42.50");
        assert_eq!(found["status"], "delivered");
        assert_eq!(found["refundable"], true);
        let refund = orders.issue_refund("1234");
        assert_eq!(refund["refunded"], true);
        assert_eq!(refund["alreadyRefunded"], false);
        assert_eq!(orders.issue_refund("order 1234")["alreadyRefunded"], true, "idempotent");
        assert_eq!(orders.lookup_order("1234")["refunded"], true);
    }

    #[test]
    fn refuses_what_it_may_not_refund() {
        let orders = OrderService::default();
        assert_eq!(orders.lookup_order("9999")["found"], false);
        assert_eq!(orders.issue_refund("9999")["refunded"], false);
        assert_eq!(orders.lookup_order("1236")["refundable"], false, "over the limit");
        assert_eq!(orders.issue_refund("1236")["refunded"], false);
        assert_eq!(orders.issue_refund("1235")["refunded"], false, "not delivered");
    }

    #[test]
    fn bad_calls_are_errors_for_the_model() {
        let orders = OrderService::default();
        assert!(orders.call("lookup_order", "{not json").is_err());
        assert!(orders.call("lookup_order", "{}").is_err());
        assert!(orders.call("delete_everything", "{}").is_err());
        assert_eq!(orders.call("lookup_order", r#"{"order_id":"1234"}"#).unwrap()["found"], true);
    }
}
