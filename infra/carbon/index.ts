export type {
  CarbonIntensity,
  CarbonIntensitySource,
  Cloud,
  IntensityKind,
  RegionRef,
  TimeWindow,
} from "./types.js";
export { parseRegionRef, intensityForPlanning } from "./types.js";
export {
  REGION_ZONES,
  LEGACY_ZONE_ALIASES,
  canonicalZone,
  zoneOfCloudRegion,
  normaliseRegionName,
} from "./region-zones.js";
export { sharedDataDir, sharedDataFile } from "./shared-data.js";
export { loadStaticCarbonTables, type StaticCarbonTables } from "./static-data.js";
export { StaticCarbonIntensitySource, type StaticFigure, type StaticPreference } from "./static-source.js";
export { LiveCarbonIntensitySource, type LiveSourceOptions } from "./live-source.js";
export { ElectricityMapsSource, type ElectricityMapsOptions } from "./electricity-maps.js";
export { WattTimeSource, type WattTimeOptions, GRAMS_PER_KWH_PER_LB_PER_MWH } from "./watttime.js";
export { CarbonAwareSdkSource, type CarbonAwareSdkOptions } from "./carbon-aware-sdk.js";
export { DEFAULT_HTTP_POLICY, HttpRequestError, type HttpPolicy } from "./http.js";
export { TtlCache } from "./ttl-cache.js";
export { CARBON_DATA_ATTRIBUTION, attributionText, type DataAttribution } from "./attribution.js";
export {
  HourlyCarbonData,
  loadHourlyCarbonData,
  parseHourlyCsv,
  parseZoneList,
  type HourlyBasis,
} from "./hourly-data.js";
export {
  LayeredIntensitySource,
  intensitySourceFromConfig,
  intensitySnapshot,
  MAX_SERIES_HOURS,
  type CarbonSourceConfig,
  type HourlyIntensity,
  type HourlyKind,
  type LayeredSourceOptions,
  type SourceFactoryOptions,
} from "./intensity-source.js";
export { assertCredentialSafeUrl } from "./http.js";
export type { ForecastSeries } from "./live-source.js";
