//! Lists: `?limit=&offset=`, answered with the page and the total.

use crate::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Paging parameters.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–500 (default 50).
    pub limit: i64,
    /// Items to skip.
    pub offset: i64,
}

impl Default for PageQuery {
    fn default() -> Self {
        PageQuery {
            limit: 50,
            offset: 0,
        }
    }
}

impl PageQuery {
    /// Checked: 422 outside the ranges.
    pub fn checked(self) -> ApiResult<PageQuery> {
        if !(1..=500).contains(&self.limit) {
            return Err(ApiError::validation("limit", "must be between 1 and 500"));
        }
        if self.offset < 0 {
            return Err(ApiError::validation("offset", "must be 0 or more"));
        }
        Ok(self)
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// How many match in all.
    pub total: i64,
    /// As asked.
    pub limit: i64,
    /// As asked.
    pub offset: i64,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<i64>,
}

impl<T> Page<T> {
    /// Page `items` out of `total`.
    pub fn new(items: Vec<T>, total: i64, q: PageQuery) -> Self {
        let next = q.offset + items.len() as i64;
        Page {
            next_offset: (next < total && !items.is_empty()).then_some(next),
            items,
            total,
            limit: q.limit,
            offset: q.offset,
        }
    }
}
