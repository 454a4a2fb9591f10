import type { Cloud } from "./types.js";

/**
 * Cloud region → Electricity Maps grid zone, for the public regions of AWS, Azure and Google Cloud.
 * Written for gpufleet from each provider's published region locations and the balancing authority
 * or bidding zone that serves that site. GCP entries agree with
 * umassos/decarbonization-potential shared_data/gcp_dc_zonecode_mapper.json (Apache-2.0), after
 * renaming that file's legacy zone keys to the current ones (see LEGACY_ZONE_ALIASES).
 * Where a metro sits on a zone boundary the choice is noted.
 */
export const REGION_ZONES: Readonly<Record<Cloud, Readonly<Record<string, string>>>> = {
  aws: {
    "us-east-1": "US-MIDA-PJM", // Northern Virginia
    "us-east-2": "US-MIDA-PJM", // Ohio (AEP zone of PJM)
    "us-west-1": "US-CAL-CISO", // Northern California
    "us-west-2": "US-NW-BPAT", // Oregon (Boardman, inside the Bonneville balancing authority)
    "us-gov-east-1": "US-MIDA-PJM",
    "us-gov-west-1": "US-NW-BPAT",
    "ca-central-1": "CA-QC", // Montréal
    "ca-west-1": "CA-AB", // Calgary
    "mx-central-1": "MX",
    "sa-east-1": "BR-CS", // São Paulo
    "eu-west-1": "IE",
    "eu-west-2": "GB",
    "eu-west-3": "FR",
    "eu-central-1": "DE",
    "eu-central-2": "CH",
    "eu-north-1": "SE-SE3", // Stockholm
    "eu-south-1": "IT-NO", // Milan
    "eu-south-2": "ES",
    "ap-northeast-1": "JP-TK",
    "ap-northeast-2": "KR",
    "ap-northeast-3": "JP-KN", // Osaka (Kansai)
    "ap-southeast-1": "SG",
    "ap-southeast-2": "AU-NSW", // Sydney
    "ap-southeast-3": "ID",
    "ap-southeast-4": "AU-VIC", // Melbourne
    "ap-south-1": "IN-WE", // Mumbai
    "ap-south-2": "IN-SO", // Hyderabad
    "ap-east-1": "HK",
    "af-south-1": "ZA",
    "me-south-1": "BH",
    "me-central-1": "AE",
    "il-central-1": "IL",
  },
  azure: {
    eastus: "US-MIDA-PJM", // Virginia
    eastus2: "US-MIDA-PJM", // Virginia
    centralus: "US-MIDW-MISO", // Iowa
    northcentralus: "US-MIDA-PJM", // Chicago (ComEd is in PJM)
    southcentralus: "US-TEX-ERCO", // San Antonio
    westcentralus: "US-NW-WACM", // Cheyenne
    westus: "US-CAL-CISO",
    westus2: "US-NW-GCPD", // Quincy, Grant County PUD
    westus3: "US-SW-AZPS", // Phoenix metro (APS and SRP share it; APS chosen)
    canadacentral: "CA-ON", // Toronto
    canadaeast: "CA-QC", // Québec City
    brazilsouth: "BR-CS",
    mexicocentral: "MX",
    northeurope: "IE",
    westeurope: "NL",
    uksouth: "GB",
    ukwest: "GB",
    francecentral: "FR",
    germanywestcentral: "DE",
    swedencentral: "SE-SE3", // Gävle
    norwayeast: "NO-NO1", // Oslo
    switzerlandnorth: "CH",
    polandcentral: "PL",
    italynorth: "IT-NO",
    spaincentral: "ES",
    finlandcentral: "FI",
    belgiumcentral: "BE",
    japaneast: "JP-TK",
    japanwest: "JP-KN",
    koreacentral: "KR",
    southeastasia: "SG",
    eastasia: "HK",
    australiaeast: "AU-NSW",
    australiasoutheast: "AU-VIC",
    centralindia: "IN-WE", // Pune
    westindia: "IN-WE", // Mumbai
    southindia: "IN-SO", // Chennai
    southafricanorth: "ZA",
    uaenorth: "AE",
    qatarcentral: "QA",
    israelcentral: "IL",
  },
  gcp: {
    "asia-east1": "TW",
    "asia-east2": "HK",
    "asia-northeast1": "JP-TK",
    "asia-northeast2": "JP-KN",
    "asia-northeast3": "KR",
    "asia-south1": "IN-WE", // Mumbai
    "asia-south2": "IN-NO", // Delhi
    "asia-southeast1": "SG",
    "asia-southeast2": "ID",
    "australia-southeast1": "AU-NSW",
    "australia-southeast2": "AU-VIC",
    "africa-south1": "ZA",
    "europe-central2": "PL",
    "europe-north1": "FI",
    "europe-north2": "SE-SE3", // Stockholm
    "europe-southwest1": "ES",
    "europe-west1": "BE",
    "europe-west2": "GB",
    "europe-west3": "DE",
    "europe-west4": "NL",
    "europe-west6": "CH",
    "europe-west8": "IT-NO",
    "europe-west9": "FR",
    "europe-west10": "DE", // Berlin
    "europe-west12": "IT-NO", // Turin
    "me-central1": "QA",
    "me-central2": "SA",
    "me-west1": "IL",
    "northamerica-northeast1": "CA-QC",
    "northamerica-northeast2": "CA-ON",
    "northamerica-south1": "MX",
    "southamerica-east1": "BR-CS",
    "southamerica-west1": "CL-SEN",
    "us-central1": "US-CENT-SWPP",
    "us-central2": "US-CENT-SWPP", // Oklahoma
    "us-east1": "US-CAR-SC",
    "us-east4": "US-MIDA-PJM",
    "us-east5": "US-MIDA-PJM", // Columbus
    "us-south1": "US-TEX-ERCO",
    "us-west1": "US-NW-PACW",
    "us-west2": "US-CAL-CISO",
    "us-west3": "US-NW-PACE",
    "us-west4": "US-NW-NEVP",
  },
};

/**
 * Zone keys that older data sets use (the RTT matrix, the GCP zone mapper) → the key the Electricity
 * Maps yearly files use now (India split into five regional zones; Australia's prefix became AU).
 */
export const LEGACY_ZONE_ALIASES: Readonly<Record<string, string>> = {
  "IN-MH": "IN-WE",
  "IN-DL": "IN-NO",
  "AUS-NSW": "AU-NSW",
  "AUS-VIC": "AU-VIC",
};

export function canonicalZone(zone: string): string {
  return LEGACY_ZONE_ALIASES[zone] ?? zone;
}

/** The grid zone of a cloud region, or undefined when the map does not know the region. */
export function zoneOfCloudRegion(cloud: Cloud, region: string): string | undefined {
  return REGION_ZONES[cloud][normaliseRegionName(cloud, region)];
}

/** Azure is written both `West Europe` and `westeurope`; the maps use the short form. */
export function normaliseRegionName(cloud: Cloud, region: string): string {
  return cloud === "azure" ? region.toLowerCase().replace(/\s+/g, "") : region.toLowerCase();
}
