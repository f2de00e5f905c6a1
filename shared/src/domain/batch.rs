//! Pure planning for the persist consumer: group a batch's messages per collection, de-duplicate
//! order ids, chunk for DynamoDB's 100-item transactions, and fit orders to short stock.

use std::collections::BTreeMap;

use crate::domain::CollectionId;

/// Orders per transaction: one item is the stock bucket's update.
pub const ORDERS_PER_TRANSACTION: usize = 99;

/// Groups items by collection, keeping first-seen order inside each group.
pub fn group_by_collection<T>(items: Vec<T>, key: impl Fn(&T) -> &CollectionId) -> BTreeMap<CollectionId, Vec<T>> {
    let mut groups: BTreeMap<CollectionId, Vec<T>> = BTreeMap::new();
    for it in items {
        groups.entry(key(&it).clone()).or_default().push(it);
    }
    groups
}

/// Which orders fit into `saleable`, taken first come first served; an order too large for what is
/// left is refused while smaller ones after it may still fit. Returns one flag per order.
pub fn fit_to_stock(saleable: i64, quantities: &[u32]) -> Vec<bool> {
    let mut left = saleable.max(0);
    quantities
        .iter()
        .map(|&q| {
            let q = i64::from(q);
            let fits = q <= left;
            if fits {
                left -= q;
            }
            fits
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_arrival_order() {
        let a = CollectionId::parse("a").unwrap();
        let b = CollectionId::parse("b").unwrap();
        let g = group_by_collection(vec![(a.clone(), 1), (b.clone(), 2), (a.clone(), 3)], |x| &x.0);
        assert_eq!(g[&a].iter().map(|x| x.1).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(g[&b].len(), 1);
    }

    #[test]
    fn fitting_is_first_come_and_skips_what_does_not_fit() {
        assert_eq!(fit_to_stock(5, &[2, 4, 3, 1]), vec![true, false, true, false]);
        assert_eq!(fit_to_stock(0, &[1]), vec![false]);
        assert_eq!(fit_to_stock(-3, &[1]), vec![false]);
        assert_eq!(fit_to_stock(10, &[1, 2, 3]), vec![true, true, true]);
    }
}
