/**
 * Bounds the routes a collector reports: per service (a key the caller chooses, e.g. the destination workload) at
 * most maxRoutesPerService distinct routes are kept, and routes of at most maxServices services. A new route past a
 * service's cap, and every route of a service past the services' cap, is reported as {other} and counted, so a path
 * shape the templating misses (a slug, an unusual token) costs one {other} row, not unbounded cardinality
 * downstream. Memory: at most maxServices × maxRoutesPerService routes, each at most http.maxPathBytes long.
 * Services are never forgotten: a collector whose services change past maxServices over its life reports the newest
 * ones' routes as {other} until it restarts (the counted service_cap says so).
 */

export const OTHER_ROUTE = '{other}';

/** What an operator changes when routes become {other}: the remedies of the catalog's drop counter. */
export const ROUTE_DROP_REMEDIES = Object.freeze({
  route_cap: 'a service has more distinct routes than http.maxRoutesPerService: add http.routeRules that template its variable segments, or raise http.maxRoutesPerService',
  service_cap: 'routes are kept for at most http.maxRouteServices services: raise it',
});

export interface RouteCatalogOptions {
  /** config http.maxRoutesPerService */
  maxRoutesPerService: number;
  /** config http.maxRouteServices */
  maxServices: number;
  /** Counts each {other} by reason (route_cap, service_cap): a DropCounter made with ROUTE_DROP_REMEDIES, or a kind's own counts. */
  drops: { add(reason: keyof typeof ROUTE_DROP_REMEDIES): void };
}

export class RouteCatalog {
  private readonly routes = new Map<string, Set<string>>();

  constructor(private readonly options: RouteCatalogOptions) {}

  /** The route reported for a request of `service`: `route` itself while the caps allow, else {other}. */
  admit(service: string, route: string): string {
    let known = this.routes.get(service);
    if (known === undefined) {
      if (this.routes.size >= this.options.maxServices) return this.other('service_cap');
      this.routes.set(service, (known = new Set()));
    }
    if (known.has(route)) return route;
    if (known.size >= this.options.maxRoutesPerService) return this.other('route_cap');
    known.add(route);
    return route;
  }

  private other(reason: keyof typeof ROUTE_DROP_REMEDIES): string {
    this.options.drops.add(reason);
    return OTHER_ROUTE;
  }
}
